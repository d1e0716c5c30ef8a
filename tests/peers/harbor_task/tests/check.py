"""Exit 0 when the greeting file holds the expected two lines."""

import sys
from pathlib import Path

lines = Path(sys.argv[1]).read_text().splitlines()
expected = ["hello from harbor", "5"]
print(f"got {lines!r}, expected {expected!r}")
sys.exit(0 if lines == expected else 1)
