"""dcim: monitoring daemon for AI/HPC data halls."""

__version__ = "0.1.0"
