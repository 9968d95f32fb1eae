"""cnnsheet: see how a convolutional neural network works, one live spreadsheet cell at a time."""

from cnnsheet.errors import CnnsheetError

__version__ = "0.1.0"
__all__ = ["CnnsheetError", "__version__"]
