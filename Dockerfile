# The worker image: queueing plus your app. Replace examples/ with your own code.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY queueing ./queueing
COPY sql ./sql
COPY examples ./examples
RUN pip install --no-cache-dir .
# Unprivileged at run time.
RUN useradd --create-home worker
USER worker
CMD ["queueing", "worker", "--app", "examples.demo_app:queue"]
