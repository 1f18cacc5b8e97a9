"""musubi-tuner (kohya-ss): the video dataset it reads (``dataset``) and its launcher (``launcher``,
on the sd-scripts launcher core in ``kohya/launcher``). Nothing of musubi-tuner is vendored."""
