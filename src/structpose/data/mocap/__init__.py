"""Motion-capture readers (BVH, ASF/AMC, exp-map takes), rig maps to the 17 Human3.6M joints, the catalogue
of the shared data folder. To read one file of your own, use :func:`structpose.data.read_mocap`."""
