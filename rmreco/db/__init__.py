"""The relational database: schema (SQLAlchemy 2 typed ORM), engine and sessions, migrations."""
