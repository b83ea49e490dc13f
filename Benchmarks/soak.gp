# Draws a soak run's samples (soak.sh): the gateway's RSS above, its open fds and open streams below, with the
# upstream restarts as dashed lines and the end of warm-up as a dotted one. Reads WORK, WARMUP, STREAMS, PNG from
# the environment.
work = system("echo $WORK")
warmup = real(system("echo $WARMUP"))
png = system("echo $PNG")
csvfile = work . "/samples.csv"
t0 = real(system("head -2 " . csvfile . " | tail -1 | awk -F, '{ printf \"%.3f\", $2 - $1 }'"))
restarts = system("cat " . work . "/restarts.txt 2>/dev/null | tr '\\n' ' '")

set terminal pngcairo size 1100,760 font "DejaVu Sans,10"
set output png
set datafile separator ","
set key bottom right opaque noenhanced
set lmargin 10
set xrange [0:*]
set grid
set xlabel "minutes"
set multiplot layout 2,1 title noenhanced "sse-gateway soak: " . system("echo $STREAMS") . " held streams, churn, SIGHUP every minute, upstream restarts (dashed)"

do for [r in restarts] {
  set arrow from (real(r) - t0) / 60, graph 0 to (real(r) - t0) / 60, graph 1 nohead dt 2 lc rgb "#c04040"
}
set arrow from warmup / 60, graph 0 to warmup / 60, graph 1 nohead dt 3 lc rgb "#404040"
set label 1 "end of warm-up" at warmup / 60, graph 0.05 offset 0.5,0 tc rgb "#404040"

set ylabel "RSS (MiB)"
set yrange [0:*]
plot csvfile using ($1 / 60):($3 / 1024) every ::1 with linespoints pt 7 ps 0.4 lw 2 lc rgb "#2060c0" title "gateway RSS (MiB)"

unset label 1
set key at graph 0.98, graph 0.6 right opaque
set ylabel "count"
set yrange [0:*]
plot csvfile using ($1 / 60):4 every ::1 with linespoints pt 7 ps 0.4 lw 2 lc rgb "#208040" title "gateway open fds", \
     csvfile using ($1 / 60):6 every ::1 with linespoints pt 7 ps 0.4 lw 2 lc rgb "#c08020" title "sse_gateway_open_streams{route=\"restarting\"}", \
     csvfile using ($1 / 60):7 every ::1 with linespoints pt 7 ps 0.4 lw 2 lc rgb "#8040a0" title "sse_gateway_open_streams{route=\"steady\"}"
unset multiplot
