"""The app `stackd watch` keeps in sync: edit this file, and the running container has
the new version a moment later (develop.watch in compose.yaml: sync+restart)."""

from flask import Flask

app = Flask(__name__)


@app.route("/")
def hello() -> str:
    return "Hello from devloop!\n"


if __name__ == "__main__":
    app.run(host="0.0.0.0", port=8000)
