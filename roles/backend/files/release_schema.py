"""Schema of a kept release (tasks/rollback.yml), run by that release's own venv Python.

usage: release_schema.py DB_REVISION
Prints JSON: the release's head revision, and whether its migration scripts know DB_REVISION
(true: the database is at or behind that release's head, so the release can upgrade it;
false: a newer release migrated it, and only a newer release's scripts can downgrade it).
"""

import json
import sys

from alembic.script import ScriptDirectory
from alembic.util import CommandError

from textbook.core.migrate import alembic_config

scripts = ScriptDirectory.from_config(alembic_config())
try:
    knows = scripts.get_revision(sys.argv[1]) is not None
except CommandError:
    knows = False
print(json.dumps({"head": scripts.get_current_head(), "knows": knows}))
