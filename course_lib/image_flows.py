"""Old name of :mod:`course_lib.flows.image` (RealNVP for images, Chapter 1), kept so that
``from course_lib import image_flows`` and ``import course_lib.image_flows`` keep working:
this module replaces itself by that one, so both names are the same module object.
"""

import sys

from course_lib.flows import image as _image

sys.modules[__name__] = _image
