#!/bin/bash
# Full-disk soak: the daemon on a looping video for 10 minutes, event log on a 64 KiB tmpfs that fills mid-run;
# at 7.5 min the tmpfs is grown (space comes back) so the held lines are written. RSS and log size every 30 s.
# Needs root (mount). Usage: sudo bash tests/soak_full_disk.sh [seconds=600] [workdir]; figures in WORKDIR/samples.txt
set -u
DUR=${1:-600}; W=${2:-/tmp/face-emotion-soak}; REPO=${REPO:-$(cd "$(dirname "$0")/.." && pwd)}
VIDEO=${VIDEO:-$REPO/../shared/media/videos/hamilton_short_clip.mp4}
mkdir -p "$W/fs"; umount "$W/fs" 2>/dev/null; mount -t tmpfs -o size=64k tmpfs "$W/fs" || exit 1
cat > "$W/config.toml" <<TOML
[camera]
source = "opencv"
device = "$VIDEO"
loop = true
fps = 15.0
[models]
dir = "$REPO/models"
[service]
stats_interval_s = 30
[outputs.leds]
enabled = false
[outputs.event_log]
path = "$W/fs/events.jsonl"
journal = false
TOML
cd "$REPO" || exit 1
nice -n 19 .venv/bin/python -m edge run --config "$W/config.toml" > "$W/stdout.log" 2> "$W/daemon.log" &
PID=$!  # nice execs python: this is the daemon itself
echo "# $(date -u +%FT%TZ) commit $(git -C "$REPO" rev-parse --short HEAD) (+ working tree)" > "$W/samples.txt"
echo "t_s rss_kb log_bytes fs_used_kb alive" >> "$W/samples.txt"
start=$(date +%s); grown=0
while :; do
  t=$(( $(date +%s) - start ))
  rss=$(awk '/VmRSS/{print $2}' /proc/$PID/status 2>/dev/null || echo 0)
  size=$(stat -c %s "$W/fs/events.jsonl" 2>/dev/null || echo 0)
  used=$(df -k --output=used "$W/fs" | tail -1 | tr -d ' ')
  alive=$(kill -0 $PID 2>/dev/null && echo yes || echo no)
  echo "$t $rss $size $used $alive" >> "$W/samples.txt"
  [ "$alive" = no ] && break
  [ $t -ge $DUR ] && break
  if [ $grown = 0 ] && [ $t -ge $((DUR * 3 / 4)) ]; then mount -o remount,size=1m "$W/fs"; grown=1
    echo "# t=$t tmpfs grown to 1 MiB" >> "$W/samples.txt"; fi
  sleep 30
done
alive=$(kill -0 $PID 2>/dev/null && echo yes || echo no)
echo "alive at the end: $alive" >> "$W/samples.txt"
kill -TERM $PID 2>/dev/null; wait $PID; echo "exit status after SIGTERM: $?" >> "$W/samples.txt"
python3 -c "import json,sys; n=0
for l in open('$W/fs/events.jsonl'): json.loads(l); n+=1
print(f'event lines {n}, all valid JSON')" >> "$W/samples.txt" 2>&1
umount "$W/fs"
