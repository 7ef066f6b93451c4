"""How much one ``netspec predict`` run takes: larger inputs are refused before they are decoded."""

MAX_INPUTS = 1_000_000  # samples in one run, all sources together
MAX_DIR_FILES = 100_000  # entries of one input directory
MAX_IMAGE_PIXELS = 1 << 26  # 67 M pixels (8192²): larger images are refused before decoding
MAX_TOP_K = 100
