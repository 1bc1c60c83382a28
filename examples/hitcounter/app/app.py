"""The classic hit counter: every request increments a counter kept in Redis."""

import os

import redis
from flask import Flask

app = Flask(__name__)
# "redis" is the service's name: stackd's embedded DNS answers it on the stack's network.
cache = redis.Redis(host=os.environ.get("REDIS_HOST", "redis"), port=6379)


@app.route("/")
def hello() -> str:
    count = cache.incr("hits")
    return f"Hello from stackd! I have been seen {count} times.\n"


@app.route("/health")
def health() -> str:
    cache.ping()
    return "ok\n"


if __name__ == "__main__":
    app.run(host="0.0.0.0", port=8000)
