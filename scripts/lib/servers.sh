# Shared by scripts/test-all and scripts/bench-roundtrips (sourced, not run).
# Installs the real servers (idempotent), makes a throwaway PKI, starts and stops the servers.
# Expects: REPO (repository root), WORK (a private temp dir), and `set -euo pipefail`.

QUIZMAIL_IT_USER=quiz@example.test
POSTFIX_PACKAGES=(postfix sasl2-bin libsasl2-modules)
SERVER_PIDS=()
POSTFIX_DIR=""

log() { printf '==> %s\n' "$*" >&2; }

# A Python venv at $REPO/.venv with the pinned scripts/requirements.txt; reinstalled only when
# the requirements change (stamp file).
ensure_venv() {
  local req="$REPO/scripts/requirements.txt" stamp="$REPO/.venv/.requirements.sha256" sum
  sum=$(sha256sum "$req" | cut -d' ' -f1)
  if [ -x "$REPO/.venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$sum" ]; then
    return 0
  fi
  log "creating .venv with $(tr '\n' ' ' < "$req")"
  rm -rf "$REPO/.venv"
  if ! python3 -m venv "$REPO/.venv" 2>/dev/null; then
    # Debian's python3 ships venv separately.
    [ "$(id -u)" -eq 0 ] || { echo "python3 -m venv failed; install python3-venv" >&2; return 1; }
    rm -rf "$REPO/.venv"
    DEBIAN_FRONTEND=noninteractive timeout 300 apt-get install -y -qq --no-install-recommends python3-venv >/dev/null \
      || { timeout 300 apt-get update -qq && DEBIAN_FRONTEND=noninteractive timeout 300 apt-get install -y -qq --no-install-recommends python3-venv >/dev/null; }
    python3 -m venv "$REPO/.venv"
  fi
  timeout 300 "$REPO/.venv/bin/pip" install -q --disable-pip-version-check --no-input -r "$req"
  echo "$sum" > "$stamp"
}

# man-db and groff-base, for the test that renders the man page with `man -l`.
MAN_PACKAGES=(man-db groff-base)
ensure_man() {
  command -v man >/dev/null 2>&1 && man --version >/dev/null 2>&1 && return 0
  [ "$(id -u)" -eq 0 ] || { echo "man is not installed and this is not root: install ${MAN_PACKAGES[*]}" >&2; return 1; }
  log "installing ${MAN_PACKAGES[*]} (apt-get)"
  DEBIAN_FRONTEND=noninteractive timeout 300 apt-get install -y -qq --no-install-recommends "${MAN_PACKAGES[@]}" >/dev/null \
    || { timeout 300 apt-get update -qq && DEBIAN_FRONTEND=noninteractive timeout 300 apt-get install -y -qq --no-install-recommends "${MAN_PACKAGES[@]}" >/dev/null; }
}

postfix_installed() { dpkg -s "${POSTFIX_PACKAGES[@]}" >/dev/null 2>&1; }

# Debian's postfix, sasl2-bin and libsasl2-modules, non-interactively, with no system config
# ("No configuration": the package starts nothing; our instance is private).
ensure_postfix() {
  postfix_installed && return 0
  [ "$(id -u)" -eq 0 ] || { echo "Postfix is not installed and this is not root: install ${POSTFIX_PACKAGES[*]}, or set QUIZMAIL_POSTFIX=0 to skip the Postfix tests" >&2; return 1; }
  log "installing ${POSTFIX_PACKAGES[*]} (apt-get)"
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  export DEBIAN_FRONTEND=noninteractive
  timeout 300 apt-get update -qq
  timeout 600 apt-get install -y -qq --no-install-recommends "${POSTFIX_PACKAGES[@]}" >/dev/null
  unset DEBIAN_FRONTEND
}

make_pki() {
  "$REPO/scripts/make-test-certs" "$WORK/pki"
  QUIZMAIL_IT_CA_FILE="$WORK/pki/ca.pem"
  QUIZMAIL_IT_CERT_SHA256=$(cat "$WORK/pki/server.sha256")
  QUIZMAIL_IT_PASSWORD="Qz-$(openssl rand -hex 10)"
  export QUIZMAIL_IT_USER QUIZMAIL_IT_CA_FILE QUIZMAIL_IT_CERT_SHA256 QUIZMAIL_IT_PASSWORD
}

# wait_ready FILE PID SECONDS: the port once the server wrote FILE, bounded.
wait_ready() {
  local file=$1 pid=$2 deadline=$((SECONDS + $3))
  while [ ! -s "$file" ]; do
    kill -0 "$pid" 2>/dev/null || { echo "server pid $pid exited before it was ready" >&2; return 1; }
    [ "$SECONDS" -lt "$deadline" ] || { echo "timed out waiting for $file" >&2; return 1; }
    sleep 0.1
  done
  "$REPO/.venv/bin/python" -c 'import json,sys; print(json.load(open(sys.argv[1]))["port"])' "$file"
}

# start_aiosmtpd NAME ARGS...: starts one scripts/smtp_server.py; exports
# QUIZMAIL_IT_<NAME>_PORT and QUIZMAIL_IT_<NAME>_STORE.
start_aiosmtpd() {
  local name=$1; shift
  local lower=${name,,} port
  SMTP_SERVER_PASSWORD=$QUIZMAIL_IT_PASSWORD "$REPO/.venv/bin/python" "$REPO/scripts/smtp_server.py" \
    --cert "$WORK/pki/server-chain.pem" --key "$WORK/pki/server.key" \
    --user "$QUIZMAIL_IT_USER" --store "$WORK/aiosmtpd/$lower" \
    --ready-file "$WORK/aiosmtpd/$lower.ready" --log-file "$WORK/aiosmtpd/$lower.log" "$@" \
    </dev/null >>"$WORK/aiosmtpd/$lower.out" 2>&1 &
  SERVER_PIDS+=($!)
  port=$(wait_ready "$WORK/aiosmtpd/$lower.ready" $! 20)
  export "QUIZMAIL_IT_${name}_PORT=$port" "QUIZMAIL_IT_${name}_STORE=$WORK/aiosmtpd/$lower"
  log "aiosmtpd $lower on 127.0.0.1:$port ($*)"
}

start_aiosmtpd_all() {
  mkdir -p "$WORK/aiosmtpd"
  start_aiosmtpd STARTTLS --mode starttls --reject-rcpt nobody@example.test
  start_aiosmtpd IMPLICIT --mode implicit --reject-rcpt nobody@example.test
  start_aiosmtpd PLAIN_CRAM --mode plain
  start_aiosmtpd PLAIN_NOCRAM --mode plain --mechs PLAIN,LOGIN
}

start_postfix() {
  POSTFIX_DIR="$WORK/postfix"
  SMTP_SERVER_PASSWORD=$QUIZMAIL_IT_PASSWORD timeout 60 "$REPO/scripts/postfix-instance" start \
    "$POSTFIX_DIR" "$WORK/pki" "$QUIZMAIL_IT_USER"
  local name value
  while IFS='=' read -r name value; do
    export "QUIZMAIL_IT_${name}=$value"
  done < "$POSTFIX_DIR/ports.env"
  export QUIZMAIL_IT_POSTFIX_MAILDIR="$POSTFIX_DIR/vmail/example.test/all"
  # Bounded wait until the submission listener answers.
  local deadline=$((SECONDS + 20))
  until "$REPO/.venv/bin/python" -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()' \
      "$QUIZMAIL_IT_POSTFIX_SUBMISSION_PORT" 2>/dev/null; do
    [ "$SECONDS" -lt "$deadline" ] || { echo "Postfix did not listen within 20 s" >&2; return 1; }
    sleep 0.2
  done
  log "postfix on 127.0.0.1: submission $QUIZMAIL_IT_POSTFIX_SUBMISSION_PORT, no-pipelining $QUIZMAIL_IT_POSTFIX_NOPIPELINING_PORT, no-chunking $QUIZMAIL_IT_POSTFIX_NOCHUNKING_PORT, neither $QUIZMAIL_IT_POSTFIX_NEITHER_PORT, submissions $QUIZMAIL_IT_POSTFIX_SUBMISSIONS_PORT"
}

# Stops every server this run started (by pid; Postfix through its own stop command).
stop_servers() {
  local pid
  for pid in "${SERVER_PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${SERVER_PIDS[@]}"; do
    for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  SERVER_PIDS=()
  if [ -n "$POSTFIX_DIR" ]; then
    "$REPO/scripts/postfix-instance" stop "$POSTFIX_DIR" || true
    POSTFIX_DIR=""
  fi
}
