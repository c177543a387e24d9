"""mitmproxy entry point: `mitmdump -s addons/replay.py` (from any working directory).

mitmproxy puts the script's folder on sys.path only while the script loads, so the
checkout's root is put there for good; without a checkout beside it, the installed `replay`
package is used. `replay addon` prints the path of the installed twin of this script.
"""

import sys
from pathlib import Path

_root = Path(__file__).resolve().parents[1]
if (_root / "replay" / "__init__.py").is_file() and str(_root) not in sys.path:
    sys.path.insert(0, str(_root))

from replay.mitm.addon import ReplayAddon  # noqa: E402

addons = [ReplayAddon()]
