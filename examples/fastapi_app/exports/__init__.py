"""A FastAPI service that queues data exports: enqueue in the request's SQLAlchemy
transaction, list "my jobs" through row-level security, stream one job's progress."""
