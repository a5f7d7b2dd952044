#!/bin/sh
# A toy worker: takes jobs from the queue and "processes" them.
set -eu
host=${QUEUE_ADDR%:*}; port=${QUEUE_ADDR#*:}
trap 'echo "worker: shutting down"; exit 0' TERM INT
echo "worker: polling $QUEUE_ADDR"
n=0
while :; do
  job=$(python3 -c "import socket,sys; s=socket.create_connection(('$host',$port),2); s.sendall(b'POP jobs\n'); print(s.recv(256).decode().strip())")
  n=$((n+1))
  if [ -n "$job" ]; then echo "worker: processed job '$job'"; fi
  [ $((n % 20)) -eq 0 ] && echo "worker: heartbeat $n polls"
  sleep 0.5 &
  wait $!
done
