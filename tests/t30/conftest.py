import pathlib
import sys

# Make the fake PHY pair importable as ``t30_fakephy`` from the test modules of this folder.
sys.path.insert(0, str(pathlib.Path(__file__).parent))
