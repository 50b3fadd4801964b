#!/usr/bin/env bash
# Services for the filestore S3/SFTP tests (called by .ci/run before tox; runs as root in CI).
# Idempotent and quiet. The tests start their own servers on 127.0.0.1 (moto's standalone S3
# server in-process, OpenSSH's sshd with a temporary config and host key); this script only makes
# sure the binaries and the test account exist.
#
# Test account for SFTP password/key auth (test-only, loopback-only sshd started by the fixtures):
#   user "dlsftp", password "dlsftp-test-password" (override with DATALOADER_SFTP_TEST_USER /
#   DATALOADER_SFTP_TEST_PASSWORD; the fixtures read the same variables).
set -euo pipefail

SFTP_USER="${DATALOADER_SFTP_TEST_USER:-dlsftp}"
SFTP_PASSWORD="${DATALOADER_SFTP_TEST_PASSWORD:-dlsftp-test-password}"

if [ ! -x /usr/sbin/sshd ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends openssh-server >/dev/null
fi

if [ "$(id -u)" = "0" ]; then
    # sshd's privilege-separation directory.
    mkdir -p /run/sshd
    chmod 0755 /run/sshd
    if ! id "$SFTP_USER" >/dev/null 2>&1; then
        useradd --create-home --shell /bin/sh "$SFTP_USER"
    fi
    echo "$SFTP_USER:$SFTP_PASSWORD" | chpasswd
fi

exit 0
