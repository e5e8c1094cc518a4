"""recfetch: list and download call recordings from five providers' REST APIs."""

__version__ = "0.1.0"
