"""The floor every app stands on: money, the shop's time, configuration checks, the
JSON API's error shapes and admin display helpers. Imports no app of the shop."""
