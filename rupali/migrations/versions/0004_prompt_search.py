"""prompt search: FTS5 on SQLite, a GIN full-text index on PostgreSQL

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SQLITE = [
    "CREATE VIRTUAL TABLE generation_fts USING fts5("
    "generation_id UNINDEXED, prompt, negative_prompt, tokenize = 'unicode61 remove_diacritics 2')",
    "CREATE TRIGGER generation_fts_insert AFTER INSERT ON generation BEGIN "
    "INSERT INTO generation_fts (generation_id, prompt, negative_prompt) "
    "VALUES (new.id, new.prompt, new.negative_prompt); END",
    "CREATE TRIGGER generation_fts_delete AFTER DELETE ON generation BEGIN "
    "DELETE FROM generation_fts WHERE generation_id = old.id; END",
    "CREATE TRIGGER generation_fts_update AFTER UPDATE OF prompt, negative_prompt ON generation BEGIN "
    "UPDATE generation_fts SET prompt = new.prompt, negative_prompt = new.negative_prompt "
    "WHERE generation_id = old.id; END",
    "INSERT INTO generation_fts (generation_id, prompt, negative_prompt) "
    "SELECT id, prompt, negative_prompt FROM generation",
]
# 'simple': no stemming, so prompts in any language match word for word (prefixes via :*).
_POSTGRES = ["CREATE INDEX ix_generation_search ON generation "
             "USING gin (to_tsvector('simple', prompt || ' ' || negative_prompt))"]


def upgrade() -> None:
    for statement in _SQLITE if op.get_bind().dialect.name == "sqlite" else _POSTGRES:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for trigger in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER IF EXISTS generation_fts_{trigger}")
        op.execute("DROP TABLE IF EXISTS generation_fts")
    else:
        op.execute("DROP INDEX IF EXISTS ix_generation_search")
