"""Reading WFC3/UVIS images: checked FITS opening, headers, chips and master catalogs.

The first step of the flow ``io -> photometry -> analysis -> report``; see
:mod:`cte.io.images`.
"""

from cte.io._catalog import read_catalog
from cte.io.images import (
    ChipImage,
    ImageScan,
    ImageSelection,
    find_images,
    read_chip,
    read_header,
    read_headers,
    scan_images,
    select_images,
)

__all__ = [
    "ChipImage",
    "ImageScan",
    "ImageSelection",
    "find_images",
    "read_catalog",
    "read_chip",
    "read_header",
    "read_headers",
    "scan_images",
    "select_images",
]
