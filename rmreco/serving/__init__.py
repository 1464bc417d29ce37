"""The scoring service: FastAPI app factory, API-key security, models following their alias,
the routes RMs call, and the audit trail of every answer."""
