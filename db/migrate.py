"""Run the Alembic migrations as the owner role, granting the application role what it needs."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import create_async_engine

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(owner_url: str, app_role: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", owner_url.replace("%", "%%"))
    config.set_main_option(
        "file_template", "%%(year)d%%(month).2d%%(day).2d_%%(hour).2d%%(minute).2d_%%(slug)s_%%(rev)s"
    )
    config.attributes["app_role"] = app_role
    return config


def role_of(database_url: str) -> str:
    """The login role a connection URL names: migrations grant the application role by this name."""
    username = make_url(database_url).username
    if not username:
        raise ValueError("DATABASE_URL must name its role (postgresql+asyncpg://ROLE@host/db)")
    return username


async def upgrade(owner_url: str, app_url: str, revision: str = "head") -> None:
    config = alembic_config(owner_url, role_of(app_url))
    engine = create_async_engine(owner_url)
    try:
        async with engine.connect() as connection:

            def run(sync_connection: Connection) -> None:
                config.attributes["connection"] = sync_connection
                command.upgrade(config, revision)

            await connection.run_sync(run)
            await connection.commit()
    finally:
        await engine.dispose()


__all__ = ["alembic_config", "role_of", "upgrade"]
