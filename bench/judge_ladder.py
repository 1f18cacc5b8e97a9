"""The judge's calibration ladder (tests/judge_ladder.py): every planted case x criterion -> verdict,
the objective's order, and each threshold's two sides and midpoint (metrics.py's thresholds are
these midpoints). Runs in a second or two on the CPU.

  PYTHONPATH=$PWD python bench/judge_ladder.py                 # this checkout's judge
  python bench/judge_ladder.py --engine /path/to/other/checkout  # another checkout's judge and
                                                                 # objective on the same ladder
An engine from before the ladder (no ``metrics.objective``) is scored with its ``tune.objective``
and its own preset strengths (its matrix has no curve beyond strength 1).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", type=Path, default=REPO, help="checkout whose lora_foundry is judged")
    parser.add_argument("--json", action="store_true", help="print the calibration as JSON too")
    args = parser.parse_args()
    sys.path[:0] = [str(args.engine.resolve()), str(REPO / "tests")]
    import judge_ladder

    from lora_foundry.evaluate import matrix, metrics, tune

    current = hasattr(metrics, "objective")
    objective = metrics.objective if current else tune.objective
    preset = judge_ladder.ladder_preset(matrix, engine_fields=current)
    results = judge_ladder.run_ladder(matrix, metrics.judge, objective, preset)
    print(f"engine: {Path(metrics.__file__).parents[2]}")
    print(judge_ladder.table(results))
    order = sorted(results, key=lambda case: -results[case]["objective"])
    print("objective order: " + " > ".join(order))
    balanced = results["balanced"]["objective"]
    below = [c for c in ("over_fit", "leaking", "do_nothing") if results[c]["objective"] < balanced]
    verdicts_ok = all(tuple(r["report"][k]["verdict"] for k in judge_ladder.VERDICTS) == judge_ladder.EXPECTED[c]
                      for c, r in results.items())
    order_ok = order[0] == "balanced" and len(below) == 3
    print(f"verdicts as planted: {'yes' if verdicts_ok else 'NO'}; balanced first, copying/leaking/do-nothing "
          f"below it: {'yes' if order_ok else 'NO'}")
    if not current:
        return 1
    calibration = judge_ladder.calibration(results)
    print(f"{'threshold':16} {'passing edge':>12} {'failing edge':>12} {'midpoint':>9} {'in use':>7}")
    for name, row in calibration.items():
        used = getattr(metrics, name, None)
        print(f"{name:16} {row['passing_edge']:12.4f} {row['failing_edge']:12.4f} {row['midpoint']:9.4f} "
              f"{'-' if used is None else f'{used:7.3f}'}")
    if args.json:
        print(json.dumps(calibration, indent=1))
    return 0 if verdicts_ok and order_ok else 1


if __name__ == "__main__":
    sys.exit(main())
