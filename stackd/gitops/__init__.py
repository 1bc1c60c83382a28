"""GitOps: a git repository is the source of truth and the host follows it (docs/gitops.md).

A source (name, repository, ref, path, files, interval) is polled by a task of its
own in the daemon; each new commit is fetched shallowly, loaded, and applied as a
new revision of the stack named after the source, with the commit recorded in the
same transaction. Pure parts: names.py, masking.py, signatures.py (webhooks),
status.py; the git command: git.py; the durable record: store.py; the loop:
service.py; the API: routes.py; the webhook listener: webhook.py.
"""
