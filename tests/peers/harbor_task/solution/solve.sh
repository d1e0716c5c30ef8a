#!/bin/bash
# The oracle's solution: it reads a file uploaded with it (a nested directory), writes to
# stderr as well as stdout (Harbor keeps both in the oracle's log), and leaves a result.
set -euo pipefail
here=$(dirname "$0")
words=$(wc -w < "$here/data/words.txt")
echo "counted $words words" >&2
mkdir -p /app
printf 'hello from harbor\n%s\n' "$words" > /app/greeting.txt
echo "wrote /app/greeting.txt"
