"""Thin front ends: parse arguments, call the library once, render the result."""
