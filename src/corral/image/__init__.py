"""Images: so far, safe layer unpacking (unpack.py). The store, the registry client and
overlay snapshots arrive with the rest of the images issue."""
