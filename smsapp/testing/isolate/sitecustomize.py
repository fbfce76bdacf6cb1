"""Imported at start-up by every child of a test stack (``PYTHONPATH`` names this folder).

The shared virtualenv holds an editable install of *some* checkout; its import hook would fill in any module this
checkout lacks from that other checkout (a half-merged mix of two branches). A stack must run exactly the code of
the checkout that started it, so the hook is removed before anything else is imported.
"""

import sys

sys.meta_path[:] = [f for f in sys.meta_path if not getattr(f, "__module__", "").startswith("__editable__")]
sys.path_hooks[:] = [h for h in sys.path_hooks if "__editable__" not in getattr(h, "__module__", "")]
sys.path[:] = [p for p in sys.path if "__editable__" not in p]
