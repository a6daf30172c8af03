"""structpose: structured prediction of 3D human pose (Tekin et al., BMVC 2016), reference implementation."""

__version__ = "0.1.0"
