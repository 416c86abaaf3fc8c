#!/bin/bash
# The checks of cross/vm-test.sh, run INSIDE the test VM (Debian 12, systemd as PID 1, no
# network) by the image's vm-test-runner.service, as root, once per boot. Not for a real host:
# it installs and purges the package, adds users and reboots/powers off the machine.
#
# The payload disk (mounted read-only at /mnt/payload) holds this script, the .deb under test
# (expirenza-agent.deb), the static fake cloud (fake_cloud, examples/fake_cloud.rs) and
# `break` (empty, or a way to break the unit on purpose; see cross/vm-test.sh).
#
# Every check prints one line on the console (the VM's serial port):
#   vm-test: PASS <check>: <evidence>      vm-test: FAIL <check>: <evidence>
# figures print as `vm-test: FIGURE <name> <value>`, and each boot ends with
#   vm-test: BOOT <n> DONE pass=<p> fail=<f>
# Boot 1 installs, configures, runs the agent and its checks (every operation the cloud sends,
# under a syscall filter that kills), then reboots; boot 2 checks the start at boot, the
# journal's payments and a streamed menuInfo, then removes and purges the package and powers
# off.
#
# The conditions given to check() are single-quoted on purpose (evaluated inside check, so
# variables such as `want` are used only there); `ls` output is evidence for a human.
# shellcheck disable=SC2016,SC2317,SC2034,SC2012
set -uo pipefail
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8
umask 0022

PAY=/mnt/payload
PKG=expirenza-agent
UNIT=$PKG.service
ETC=/etc/$PKG
STATE=/var/lib/$PKG
RUNDIR=/run/$PKG
CONFIG=$ETC/config.toml
FC=/usr/local/bin/fake_cloud
WS_PORT=18080 HTTP_PORT=18081 CONTROL=18082
RESTO=vm-test-resto
POS_USER=pos
DROPIN_DIR=/etc/systemd/system/$UNIT.d
DROPIN=$DROPIN_DIR/50-vm-test-strict-filter.conf
# rIDs of the payment and the bill it pays (demo mirror: b-3002 is open and totals 90.00)
PAY_RID=vmt-pay-1 PAY_BILL=b-3002
# boot 2 runs with this [limits] max_body_bytes: the demo menu (~8 KiB) is then streamed
STREAM_LIMIT=4096
MARK=/var/lib/vm-test
BREAK="$(cat "$PAY/break" 2>/dev/null || true)"

npass=0 nfail=0 boot=0 finished=0
say() { echo "vm-test: $*"; }
pass() { npass=$((npass + 1)); say "PASS $1: $2"; }
fail() { nfail=$((nfail + 1)); say "FAIL $1: $2"; }
# check NAME EVIDENCE CONDITION: PASS when the shell condition (evaluated here, so it sees
# the caller's locals) succeeds
check() { if eval "$3"; then pass "$1" "$2"; else fail "$1" "$2"; fi; }
prop() { systemctl show -p "$2" --value "$1"; }
oneline() { tr '\n\t' '  ' | sed 's/  */ /g; s/ $//'; }
now_ms() { date +%s%3N; }
# seconds since boot on CLOCK_BOOTTIME, which equals CLOCK_MONOTONIC here (no suspend), in µs
mono_us() { awk '{ printf "%d\n", $1 * 1000000 }' /proc/uptime; }
ms_to_s() { awk -v m="$1" 'BEGIN { printf "%.2f", m / 1000 }'; }
# wait_until SECS COMMAND...: poll (0.2 s) until COMMAND succeeds; 1 on timeout
wait_until() {
  local end=$(( $(date +%s) + $1 )); shift
  until "$@"; do [ "$(date +%s)" -lt "$end" ] || return 1; sleep 0.2; done
}
rss_of() { # "VmHWM=… VmRSS=… RssAnon=… RssFile=… AnonHugePages=…" in KiB
  awk '/^(VmRSS|VmHWM|RssAnon|RssFile):/ { printf "%s=%s ", substr($1, 1, length($1) - 1), $2 }' "/proc/$1/status"
  # one transparent huge page adds 2 MiB to RssAnon at once: show them, and the THP mode
  awk '/^AnonHugePages:/ { printf "AnonHugePages=%s", $2 }' "/proc/$1/smaps_rollup"
  printf ' (THP %s)' "$(grep -o '\[[a-z]*\]' /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null)"
}
as_pos() { # run as the POS user, primary group expirenza-agent, umask 0007
  (umask 0007; setpriv --reuid="$POS_USER" --regid="$PKG" --init-groups -- "$@")
}

finish() { # $1: reboot|poweroff
  finished=1
  say "BOOT $boot DONE pass=$npass fail=$nfail"
  sync
  systemctl "$1" --no-block
  exit 0
}
on_exit() {
  [ "$finished" = 1 ] && return
  say "FAIL script: the guest script ended early (boot $boot)"
  say "BOOT $boot DONE pass=$npass fail=$((nfail + 1))"
  sync
  systemctl poweroff --no-block
}
trap on_exit EXIT

start_rig() { # the fake cloud (root: it is the cloud, it knows the secret) and the POS
  install -d -m 0700 /run/vmt
  install -m 0600 "$ETC/secret_key" /run/vmt/cloud-secret
  systemctl reset-failed vmt-cloud.service vmt-pos.service >/dev/null 2>&1 || true
  systemd-run --quiet --unit=vmt-cloud -p Type=notify "$FC" serve --ws-port $WS_PORT \
    --http-port $HTTP_PORT --control $CONTROL --resto-id $RESTO --secret-file /run/vmt/cloud-secret
}
start_pos() {
  systemd-run --quiet --unit=vmt-pos -p Type=notify -p User=$POS_USER -p Group=$PKG -p UMask=0007 \
    "$FC" pos --journal "$STATE/journal.sqlite" --mirror "$STATE/mirror.sqlite" --poll-ms 100
}
# call NAME OP RID FIELDS EXPECT: one round trip through the agent, checked. sent_rc: the
# exit status of the last call or send (what follows waits for its effect only if it went out)
sent_rc=0
call() {
  local out rc
  out="$("$FC" call --control $CONTROL --op "$2" --rid "$3" --fields "$4" --expect "$5" --timeout 30 2>&1)"
  rc=$?
  sent_rc=$rc
  check "$1" "$(head -n 1 <<<"$out")" '[ "$rc" = 0 ]'
}
payments() { as_pos "$FC" payments --mirror "$STATE/mirror.sqlite" --bill "$PAY_BILL" 2>&1; }
# send NAME OP RID FIELDS: an operation that has no callback, sent through the agent's link
send() {
  local out rc
  out="$("$FC" send --control $CONTROL --op "$2" --rid "$3" --fields "$4" 2>&1)"
  rc=$?
  sent_rc=$rc
  check "$1" "$out" '[ "$rc" = 0 ]'
}
# pos_applied NAME RID PATTERN: the POS applied the journaled command RID (waits up to 30 s
# when the command went out), and what it recorded matches PATTERN
applied_by_pos() { as_pos "$FC" applied --mirror "$STATE/mirror.sqlite" --rid "$1" >/dev/null 2>&1; }
pos_applied() {
  local out pat="$3"
  [ "$sent_rc" != 0 ] || wait_until 30 applied_by_pos "$2"
  out="$(as_pos "$FC" applied --mirror "$STATE/mirror.sqlite" --rid "$2" 2>&1)"
  check "$1" "$out" 'grep -q "status=applied" <<<"$out" && grep -qE "$pat" <<<"$out"'
}
# the settings the agent stored in the journal, read as the POS reads them
settings() { as_pos "$FC" settings --journal "$STATE/journal.sqlite" 2>&1; }
settings_stored() { settings | grep -qF "rid=$1"; }
# agent_logged NAME PATTERN: the agent's log of this boot has a line matching PATTERN
agent_logged() {
  local line
  line="$(journalctl -b -u $UNIT -o cat 2>/dev/null | grep -E "$2" | tail -n 1)"
  check "$1" "${line:-no log line matching $2}" '[ -n "$line" ]'
}
# no_sigsys NAME PID: the agent PID ran through everything without being killed
no_sigsys() {
  local p="$2"
  check "$1" \
    "MainPID $p -> $(main_pid), NRestarts=$(prop $UNIT NRestarts), $(prop $UNIT ActiveState)/$(prop $UNIT SubState), $(journalctl -b -u $UNIT -o cat 2>/dev/null | grep -ciE 'SIGSYS|status=31|core-dump') SIGSYS lines in the journal" \
    '[ "$p" = "$(main_pid)" ] && [ "$(prop $UNIT NRestarts)" = 0 ] && [ "$(prop $UNIT SubState)" = running ] && ! journalctl -b -u $UNIT -o cat | grep -qiE "SIGSYS|status=31"'
}

# The technician's read-only commands, as root from a shell: no credential, no secret in the
# environment (only the agent's unit gets $CREDENTIALS_DIRECTORY).
technician() { env -i PATH="$PATH" LC_ALL=C.UTF-8 TERM=dumb "$@"; }
shown() { # RC PATTERN < output: the matching lines on success, the first lines otherwise
  if [ "$1" = 0 ]; then grep -E "$2" | oneline; else head -n 3 | oneline; fi
}
check_cli() { # $1: expected journal status of the payment
  local want="$1" out rc
  out="$(technician $PKG status --config "$CONFIG" 2>&1)"; rc=$?
  check "cli: status --config (no secret)" "rc=$rc; $(shown "$rc" '^ *(link|journal)' <<<"$out")" \
    '[ "$rc" = 0 ]'
  out="$(technician $PKG journal --config "$CONFIG" 2>&1)"; rc=$?
  check "cli: journal --config (no secret)" "rc=$rc; $(shown "$rc" "$PAY_RID|^total" <<<"$out")" \
    '[ "$rc" = 0 ] && grep -q "$want .*$PAY_RID" <<<"$out"'
}

main_pid() { prop $UNIT MainPID; }
restarted_from() { # $1: the killed MainPID
  local p; p="$(main_pid)"
  [ "$p" -gt 0 ] && [ "$p" != "$1" ] && [ "$(prop "$UNIT" SubState)" = running ]
}

phase1() {
  say "boot 1: $(uname -srm), PID 1 is $(cat /proc/1/comm), $(systemctl --version | head -n 1)"
  check "systemd is PID 1" "PID 1 = $(cat /proc/1/comm); system state $(systemctl is-system-running 2>&1)" \
    '[ "$(cat /proc/1/comm)" = systemd ]'

  # --- install -------------------------------------------------------------------------------
  local out rc
  out="$(dpkg -i "$PAY/$PKG.deb" 2>&1)"; rc=$?
  check "install: dpkg -i" "rc=$rc, state $(dpkg-query -W -f='${db:Status-Abbrev}${Version}' $PKG 2>&1)" \
    '[ "$rc" = 0 ]'
  [ "$rc" = 0 ] || echo "$out"
  local pw; pw="$(getent passwd $PKG)"
  check "install: system user and group" "passwd: $pw; group: $(getent group $PKG)" \
    '[ -n "$pw" ] && [ "$(cut -d: -f3 <<<"$pw")" -lt 1000 ] && getent group $PKG >/dev/null'
  check "install: unit enabled" "is-enabled $(systemctl is-enabled $UNIT 2>&1); $(ls -l /etc/systemd/system/multi-user.target.wants/$UNIT 2>&1 | sed 's/.* \//\//')" \
    '[ "$(systemctl is-enabled $UNIT 2>&1)" = enabled ]'
  check "install: not started by the package" "ActiveState=$(prop $UNIT ActiveState)" \
    '[ "$(prop $UNIT ActiveState)" = inactive ]'
  systemctl start $UNIT; rc=$?
  check "no start without config.toml" "systemctl start rc=$rc; ActiveState=$(prop $UNIT ActiveState) ConditionResult=$(prop $UNIT ConditionResult) ExecMainPID=$(prop $UNIT ExecMainPID)" \
    '[ "$(prop $UNIT ActiveState)" = inactive ] && [ "$(prop $UNIT ConditionResult)" = no ]'

  # --- configure as docs/deploy.md says; the POS side --------------------------------------
  install -m 0600 -o root -g root /dev/null "$ETC/secret_key"
  printf %s "vm-test-secret-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')" >"$ETC/secret_key"
  install -m 0640 -o root -g $PKG /dev/null "$CONFIG"
  cat >"$CONFIG" <<EOF
# written by cross/vm-test-guest.sh: the fake cloud on loopback inside the VM
resto_id = "$RESTO"
ws_url = "ws://127.0.0.1:$WS_PORT/restaurantEntryPoint"
callback_url = "http://127.0.0.1:$HTTP_PORT/callback"
[link]
backoff_floor_ms = 500
backoff_cap_ms = 2000
EOF
  useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin $POS_USER
  usermod -aG $PKG $POS_USER
  as_pos $PKG init-mirror "$STATE/mirror.sqlite" --demo >/dev/null 2>&1 \
    || fail "pos: init-mirror --demo" "$(ls -la "$STATE" | oneline)"
  # The strict filter: what the unit's SystemCallFilter= blocks kills the agent (SIGSYS)
  # instead of failing with EPERM, so a blocked syscall cannot go unnoticed.
  mkdir -p "$DROPIN_DIR"
  printf '[Service]\nSystemCallErrorNumber=kill\n' >"$DROPIN"
  case "$BREAK" in
    "") ;;
    syscall)
      # Demonstration that the checks can fail: a syscall the agent needs is blocked.
      printf 'SystemCallFilter=~connect\n' >>"$DROPIN"
      say "BREAK: the unit is broken on purpose: SystemCallFilter=~connect" ;;
    *) say "BREAK: unknown mode '$BREAK'" ;;
  esac
  systemctl daemon-reload
  start_rig || fail "rig: fake cloud" "systemd-run failed: $(systemctl status vmt-cloud 2>&1 | tail -n 5 | oneline)"

  # --- start: Type=notify ------------------------------------------------------------------
  local t0 t1; t0=$(now_ms)
  systemctl start $UNIT; rc=$?
  t1=$(now_ms)
  local pid; pid="$(main_pid)"
  local a_us e_us
  e_us=$(prop $UNIT ExecMainStartTimestampMonotonic); a_us=$(prop $UNIT ActiveEnterTimestampMonotonic)
  check "start: Type=notify reaches active" "rc=$rc Type=$(prop $UNIT Type) $(prop $UNIT ActiveState)/$(prop $UNIT SubState) MainPID=$pid; READY after $(ms_to_s $(( (a_us - e_us) / 1000 ))) s (systemctl start took $(ms_to_s $((t1 - t0))) s)" \
    '[ "$rc" = 0 ] && [ "$(prop $UNIT Type)" = notify ] && [ "$(prop $UNIT SubState)" = running ] && [ "$pid" -gt 0 ]'
  say "FIGURE start_to_ready_s $(ms_to_s $(( (a_us - e_us) / 1000 )))"
  start_pos || fail "rig: simulated POS" "$(systemctl status vmt-pos 2>&1 | tail -n 5 | oneline)"
  out="$("$FC" wait --control $CONTROL --connections 1 --timeout 60 2>&1)"; rc=$?
  check "agent connects to the fake cloud" "$out" '[ "$rc" = 0 ]'

  # --- sandbox in effect ---------------------------------------------------------------------
  local st; st="$(grep -E '^(Uid|Seccomp|NoNewPrivs|CapEff|CapBnd):' "/proc/$pid/status" 2>/dev/null | oneline)"
  check "sandbox: seccomp filter, no_new_privs, no capabilities" "$st" \
    'grep -Eq "Seccomp: 2( |$)" <<<"$st" && grep -Eq "NoNewPrivs: 1( |$)" <<<"$st" && grep -Eq "CapEff: 0+( |$)" <<<"$st" && grep -Eq "CapBnd: 0+( |$)" <<<"$st"'
  check "sandbox: runs as $PKG" "uid $(awk '/^Uid:/ { print $2 }' "/proc/$pid/status") = $(id -u $PKG)" \
    '[ "$(awk "/^Uid:/ { print \$2 }" "/proc/$pid/status")" = "$(id -u $PKG)" ]'
  local ns1 nsa; ns1="$(readlink /proc/1/ns/mnt)"; nsa="$(readlink "/proc/$pid/ns/mnt")"
  local rootmnt statemnt
  rootmnt="$(awk '$5 == "/" { print $6 }' "/proc/$pid/mountinfo" | head -n 1)"
  statemnt="$(awk -v d="$STATE" '$5 == d { print $6 }' "/proc/$pid/mountinfo" | tail -n 1)"
  check "sandbox: private mount namespace, / read-only, state dir writable" \
    "agent $nsa, PID 1 $ns1; / ${rootmnt:-?}; $STATE ${statemnt:-?}" \
    '[ -n "$nsa" ] && [ "$nsa" != "$ns1" ] && [[ "$rootmnt" =~ ^ro(,|$) ]] && [[ "$statemnt" =~ ^rw(,|$) ]]'
  local cg; cg="/sys/fs/cgroup$(cut -d: -f3 "/proc/$pid/cgroup")"
  check "sandbox: memory.max, memory.high and pids.max" \
    "$cg: memory.max=$(cat "$cg/memory.max" 2>&1) memory.high=$(cat "$cg/memory.high" 2>&1) pids.max=$(cat "$cg/pids.max" 2>&1)" \
    '[ "$(cat "$cg/memory.max")" = 67108864 ] && [ "$(cat "$cg/memory.high")" = 50331648 ] && [ "$(cat "$cg/pids.max")" = 32 ]'
  check "sandbox: strict filter drop-in loaded" \
    "DropInPaths=$(prop $UNIT DropInPaths); SystemCallErrorNumber=$(prop $UNIT SystemCallErrorNumber) (2147483646: kill)" \
    'grep -qx "SystemCallErrorNumber=kill" "$DROPIN" && [[ "$(prop $UNIT DropInPaths)" == *"$DROPIN"* ]]'

  # --- the agent's RSS at idle (connected, nothing asked yet) --------------------------------
  sleep 5
  say "FIGURE rss_idle_kib $(rss_of "$pid")"

  # --- every operation the cloud sends, under the strict filter ------------------------------
  # The reads (menuInfo whole here; streamed on boot 2), each answer checked for its content.
  call "round trip: checkWork" checkWork vmt-check-1 '' '"readyToWork":true'
  call "round trip: versionInfo" versionInfo vmt-version-1 '' '"implementedFeatures"'
  call "round trip: tablesInfo" tablesInfo vmt-tables-1 '' '"number":12'
  call "round trip: hallplansInfo" hallplansInfo vmt-halls-1 '' '"Літня тераса"'
  call "round trip: usersInfo" usersInfo vmt-staff-1 '' '"Оксана Мельник"'
  call "round trip: categoriesInfo" categoriesInfo vmt-categories-1 '' '"name":"Кухня"'
  call "round trip: menuInfo (whole)" menuInfo vmt-menu-1 '' '"Борщ український з пампушками"'
  agent_logged "menuInfo answered whole" "op=menuInfo rID=vmt-menu-1 outcome=SUCCESS .* modifiers=[0-9]+ bytes="
  call "round trip: stopList" stopList vmt-stop-1 '' '"id":"m-512","quantity":0'
  call "round trip: checkProductsRestrictions" checkProductsRestrictions vmt-restrict-1 \
    '"items":[{"id":"m-101","quantity":1},{"id":"m-512","quantity":1}]' '"checkResult":"NOT_AVAILABLE"'
  call "round trip: getBill" getBill vmt-bill-1 '"tableNumber":"12"' '"state":"SUCCESS"'
  call "round trip: getBill, no such table" getBill vmt-bill-nf '"tableNumber":"99"' '"substate":"TABLE_NOT_FOUND"'
  # The money operations: journaled by the agent, applied by the POS, answered from its outcome.
  call "round trip: payBill (applied by the POS)" payBill $PAY_RID \
    "\"billId\":\"$PAY_BILL\",\"sum\":90.00,\"tips\":10.00,\"fiscalData\":[{\"key\":\"ЕКВАЙЕР\",\"value\":\"VM\"}]" '"state":"SUCCESS"'
  out="$(payments)"
  check "pos: payment applied to the mirror once" "$out" 'grep -qF "state=PAYED payments=1 [$PAY_RID:9000+1000]" <<<"$out"'
  call "round trip: payBill, wrong sum refused" payBill vmt-pay-bad '"billId":"b-3001","sum":200.00' \
    '"substate":"WRONG_REQUEST_SUM"'
  call "round trip: splitOrder (applied by the POS)" splitOrder vmt-split-1 \
    '"billId":"4afc3774-cc50-4e07-ad81-dd65f166244a","controlSum":1080.6,"positions":[{"id":"8e2ad560-938b-4972-ba60-8098aac99f8b","quantity":1}]' \
    '"state":"SUCCESS"'
  pos_applied "pos: splitOrder applied" vmt-split-1 'newBillId'
  call "round trip: createOrderOnTable (applied by the POS)" createOrderOnTable vmt-order-1 \
    '"externalId":"vmt-ext-1","originName":"QR menu","tableId":"table-5","items":[{"id":"m-101","quantity":1},{"id":"m-620","quantity":1}]' \
    '"success":true'
  pos_applied "pos: createOrderOnTable applied" vmt-order-1 'orderId'
  # No callback for these two: the POS shows the message; the settings wait in the journal.
  send "sent: showMessage" showMessage vmt-msg-1 '"message":"VM: гість за столом 12 просить рахунок","warning":true,"billId":"6f1d2c7e-4b1a-4e0b-9b55-0d2a7c4e9a11"'
  pos_applied "pos: showMessage shown" vmt-msg-1 'shown=.*гість за столом 12'
  send "sent: setSettings" setSettings vmt-settings-1 '"printPrecheckQr":true'
  [ "$sent_rc" != 0 ] || wait_until 30 settings_stored vmt-settings-1
  out="$(settings)"
  check "journal: setSettings stored for the POS" "$out" 'grep -qF "rid=vmt-settings-1" <<<"$out" && grep -qF "\"printPrecheckQr\":true" <<<"$out"'
  # the journal the agent created and the mirror the POS made: writable by the other side
  local shared; shared="$(cd $STATE && stat -c '%n %a %U:%G' journal.sqlite* mirror.sqlite* 2>&1 | oneline)"
  check "shared files: group $PKG, mode 0660" "$shared" \
    '[ -n "$shared" ] && ! (cd $STATE && stat -c "%a %G" journal.sqlite* mirror.sqlite*) | grep -qv "^660 $PKG\$"'
  say "FIGURE rss_after_round_trips_kib $(rss_of "$pid")"
  no_sigsys "strict filter: no SIGSYS through the round trips" "$pid"

  # --- control: the same filter kills a process that makes a blocked syscall -----------------
  # The filter properties are the agent's own (unit file + drop-ins), so the control proves
  # the filter the agent ran under kills: `nice` calls setpriority (in ~@resources).
  local filt=()
  while IFS= read -r l; do filt+=(-p "$l"); done < <(systemctl cat $UNIT | grep -E '^(SystemCallFilter|SystemCallErrorNumber|SystemCallArchitectures)=')
  out="$(systemd-run --wait --quiet --unit=vmt-control-ok -p User=$PKG -p NoNewPrivileges=yes "${filt[@]}" /bin/true 2>&1)"; local rc_ok=$?
  out="$(systemd-run --wait --unit=vmt-control-kill -p User=$PKG -p NoNewPrivileges=yes "${filt[@]}" /usr/bin/nice -n 5 /bin/true 2>&1)"; rc=$?
  check "strict filter: control process killed by it" \
    "same filter (${#filt[@]} properties): /bin/true rc=$rc_ok; nice -n 5 rc=$rc: $(grep -iE 'result|code=' <<<"$out" | oneline)" \
    '[ "$rc_ok" = 0 ] && grep -Eq "status=(31/)?SYS" <<<"$out"'

  # --- the technician's commands -------------------------------------------------------------
  check_cli applied

  # --- watchdog: still fed 75 s after the start ------------------------------------------------
  local up_us=$(( $(mono_us) - a_us ))
  [ "$up_us" -ge 75000000 ] || sleep "$(awk -v u=$((75000000 - up_us)) 'BEGIN { printf "%.1f", u / 1e6 }')"
  local wd_us now_us; wd_us=$(prop $UNIT WatchdogTimestampMonotonic); now_us=$(mono_us)
  check "watchdog: still fed after 75 s, NRestarts=0" \
    "WatchdogUSec=$(prop $UNIT WatchdogUSec); up $(( (now_us - a_us) / 1000000 )) s; last WATCHDOG=1 $(( (now_us - wd_us) / 1000000 )) s ago, $(( (wd_us - a_us) / 1000000 )) s after READY; NRestarts=$(prop $UNIT NRestarts); MainPID $pid -> $(main_pid)" \
    '[ "$(prop $UNIT WatchdogUSec)" = 30s ] && [ $((wd_us - a_us)) -ge 60000000 ] && [ $((now_us - wd_us)) -lt 30000000 ] && [ "$(prop $UNIT NRestarts)" = 0 ] && [ "$pid" = "$(main_pid)" ] && [ "$(prop $UNIT SubState)" = running ]'

  # --- kill -9: restarted by systemd ---------------------------------------------------------
  t0=$(now_ms)
  rc=1
  # (never `kill -9 0`: with no MainPID that would kill this script's process group)
  if [ "${pid:-0}" -gt 0 ]; then kill -9 "$pid"; wait_until 60 restarted_from "$pid"; rc=$?; fi
  t1=$(now_ms)
  local pid2; pid2="$(main_pid)"
  check "kill -9: restarted" "$([ "${pid:-0}" -gt 0 ] && echo "killed $pid" || echo "no MainPID to kill"); MainPID now $pid2 after $(ms_to_s $((t1 - t0))) s (RestartSec=$(prop $UNIT RestartUSec)); NRestarts=$(prop $UNIT NRestarts)" \
    '[ "$rc" = 0 ] && [ "$(prop $UNIT NRestarts)" = 1 ]'
  out="$("$FC" wait --control $CONTROL --connections 2 --timeout 60 2>&1)"
  call "kill -9: answers again after the restart" getBill vmt-bill-2 '"tableNumber":"12"' '"state":"SUCCESS"'

  # --- stop: fast, clean, runtime directory removed --------------------------------------------
  check "runtime directory while running" "$(ls -ld $RUNDIR 2>&1 | oneline); $(ls $RUNDIR 2>&1 | oneline)" '[ -d $RUNDIR ]'
  t0=$(now_ms)
  systemctl stop $UNIT; rc=$?
  t1=$(now_ms)
  check "stop: clean (exit 0 on SIGTERM), /run/$PKG removed" \
    "systemctl stop rc=$rc in $(ms_to_s $((t1 - t0))) s; Result=$(prop $UNIT Result) ExecMainStatus=$(prop $UNIT ExecMainStatus); $(ls -ld $RUNDIR 2>&1)" \
    '[ "$rc" = 0 ] && [ "$(prop $UNIT Result)" = success ] && [ "$(prop $UNIT ActiveState)" = inactive ] && [ ! -e $RUNDIR ]'
  say "FIGURE stop_s $(ms_to_s $((t1 - t0)))"

  systemctl stop vmt-pos.service vmt-cloud.service
  # boot 2 answers menuInfo streamed: a body limit under the demo menu's size
  printf '[limits]\nmax_body_bytes = %s\n' "$STREAM_LIMIT" >>"$CONFIG"
  echo 2 >"$MARK/phase"
  finish reboot
}

phase2() {
  say "boot 2: $(uname -srm)"
  local runner_us; runner_us=$(prop vm-test-runner.service ExecMainStartTimestampMonotonic)
  local a_us; a_us=$(prop $UNIT ActiveEnterTimestampMonotonic)
  check "reboot: the agent started at boot" \
    "$(prop $UNIT ActiveState)/$(prop $UNIT SubState) since $(prop $UNIT ActiveEnterTimestamp) ($(ms_to_s $(( a_us / 1000 ))) s after the kernel), before this script ($(ms_to_s $(( runner_us / 1000 ))) s); NRestarts=$(prop $UNIT NRestarts)" \
    '[ "$(prop $UNIT SubState)" = running ] && [ "$a_us" -gt 0 ] && [ "$a_us" -le "$runner_us" ]'
  local pid0; pid0="$(main_pid)"
  start_rig || fail "rig: fake cloud" "systemd-run failed"
  start_pos || fail "rig: simulated POS" "systemd-run failed"
  local out rc
  out="$("$FC" wait --control $CONTROL --connections 1 --timeout 60 2>&1)"; rc=$?
  check "reboot: agent connects" "$out" '[ "$rc" = 0 ]'
  out="$(payments)"
  check "reboot: the payment is still applied, once" "$out" 'grep -qF "state=PAYED payments=1 [$PAY_RID:" <<<"$out"'
  check_cli applied
  # The cloud re-sends the payment (it never saw an answer): answered from the journal, not
  # applied again.
  call "reboot: re-sent payBill answered from the journal" payBill $PAY_RID \
    "\"billId\":\"$PAY_BILL\",\"sum\":90.00,\"tips\":10.00" '"state":"SUCCESS"'
  out="$(payments)"
  check "reboot: the re-sent payment is not applied twice" "$out" 'grep -qF "state=PAYED payments=1 [$PAY_RID:" <<<"$out"'
  call "reboot: round trip getBill" getBill vmt-bill-3 '"tableNumber":"12"' '"state":"SUCCESS"'
  # Still under the strict filter (the drop-in stays): menuInfo over max_body_bytes is streamed.
  call "reboot: round trip menuInfo (streamed)" menuInfo vmt-menu-2 '' '"Борщ український з пампушками"'
  agent_logged "reboot: menuInfo streamed over max_body_bytes = $STREAM_LIMIT" \
    "op=menuInfo rID=vmt-menu-2 outcome=SUCCESS .* streamed bytes="
  no_sigsys "reboot: strict filter, no SIGSYS" "$pid0"
  systemctl stop vmt-pos.service vmt-cloud.service

  # --- dpkg -r: program gone, configuration and data stay ------------------------------------
  local pid; pid="$(main_pid)"
  out="$(dpkg -r $PKG 2>&1)"; rc=$?
  check "dpkg -r: stops the agent, removes program and unit" \
    "rc=$rc; state $(dpkg-query -W -f='${db:Status-Abbrev}' $PKG 2>&1); process $pid $( [ -d "/proc/$pid" ] && echo ALIVE || echo gone); unit $(systemctl show -p LoadState --value $UNIT); /usr/bin/$PKG $( [ -e /usr/bin/$PKG ] && echo PRESENT || echo gone)" \
    '[ "$rc" = 0 ] && [ ! -d "/proc/$pid" ] && [ ! -e /usr/bin/$PKG ] && [ ! -e /lib/systemd/system/$UNIT ] && [ "$(dpkg-query -W -f="\${db:Status-Abbrev}" $PKG | tr -d " ")" = rc ]'
  local kept=() f
  for f in "$ETC/config.toml.example" "$CONFIG" "$ETC/secret_key" "$STATE/journal.sqlite" "$STATE/mirror.sqlite"; do
    [ -e "$f" ] && kept+=("$f")
  done
  check "dpkg -r: configuration, secret, journal, mirror and user kept" \
    "kept ${#kept[@]}/5: ${kept[*]}; user $(getent passwd $PKG | cut -d: -f1,3)" \
    '[ "${#kept[@]}" = 5 ] && getent passwd $PKG >/dev/null'

  # --- dpkg --purge: configuration goes; payment records and the user stay ---------------------
  out="$(dpkg --purge $PKG 2>&1)"; rc=$?
  local left=()
  for f in "$ETC" "$CONFIG" "$ETC/secret_key" /etc/systemd/system/multi-user.target.wants/$UNIT; do
    { [ -e "$f" ] || [ -L "$f" ]; } && left+=("$f")
  done
  # the test's own drop-in is the admin's file, not the package's: purge must leave it alone
  check "dpkg --purge: configuration and enablement removed" \
    "rc=$rc; state '$(dpkg-query -W -f='${db:Status-Abbrev}' $PKG 2>/dev/null)'; left: ${left[*]:-none}" \
    '[ "$rc" = 0 ] && [ "${#left[@]}" = 0 ]'
  check "dpkg --purge: journal, mirror and system user kept" \
    "$(ls $STATE 2>&1 | oneline); user $(getent passwd $PKG | cut -d: -f1,3)" \
    '[ -e $STATE/journal.sqlite ] && [ -e $STATE/mirror.sqlite ] && getent passwd $PKG >/dev/null'
  echo 3 >"$MARK/phase"
  finish poweroff
}

mkdir -p "$MARK"
phase="$(cat "$MARK/phase" 2>/dev/null || echo 1)"
say "FIGURE boot${phase}_s $(cut -d' ' -f1 /proc/uptime) ($(systemd-analyze 2>/dev/null | head -n 1 | sed 's/^Startup finished in //'))"
install -m 0755 "$PAY/fake_cloud" "$FC"
case "$phase" in
  1) boot=1; phase1 ;;
  2) boot=2; phase2 ;;
  *) boot="$phase"; say "FAIL script: unexpected boot (phase $phase)"; nfail=1; finish poweroff ;;
esac
