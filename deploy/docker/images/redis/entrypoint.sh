#!/bin/sh
# The official image builds Redis with protected mode off; Debian's has it on.
if [ "$1" = redis-server ]; then
  shift
  exec redis-server --protected-mode no "$@"
fi
exec "$@"
