"""Corral: a Linux container engine in Python, built from the kernel up."""

__version__ = "0.1.0"
