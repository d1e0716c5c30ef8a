#!/bin/bash
# The verifier: reward 1 when /app/greeting.txt is right, else 0. The check itself is in
# python3 to show the task runs what the host has.
mkdir -p /logs/verifier
if python3 /tests/check.py /app/greeting.txt; then
    echo 1 > /logs/verifier/reward.txt
else
    echo 0 > /logs/verifier/reward.txt
fi
