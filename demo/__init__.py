"""The purchase flow played for real: simulator + gunicorn + a scripted mini-program."""
