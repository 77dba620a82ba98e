"""The ``hubbub`` commands that act as a client of a server: chat, send, receive, record,
doctor.

Each module adds its subcommand with ``add_parser`` and runs it with ``run``; the
``hubbub`` command (``hubbub.cli``) only registers them.
"""

from __future__ import annotations

import argparse

from hubbub.commands import chat, doctor, record, transfer


def add_client_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    chat.add_parser(commands)
    transfer.add_parsers(commands)
    record.add_parser(commands)
    doctor.add_parser(commands)
