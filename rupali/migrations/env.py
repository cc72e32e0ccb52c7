"""Alembic environment: migrations run against the engine handed over by :mod:`rupali.migrate`."""

from alembic import context
from sqlmodel import SQLModel

import rupali.models  # noqa: F401  (fills SQLModel.metadata)
from rupali.migrate import include_name

config = context.config
engine = config.attributes["engine"]

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=SQLModel.metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite can only ALTER through table copies
        compare_type=True,
        include_name=include_name,
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
