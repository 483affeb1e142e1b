"""Alembic migrations, shipped inside the package; run by `textbook migrate`."""
