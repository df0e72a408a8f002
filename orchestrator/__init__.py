"""orchestrate: benchmark orchestration for high-performance network servers."""
__version__ = "0.1.0"
