"""The rebuilt server from the inside (testinfra); molecule/default's tests run on it too."""

import json

ROOT = '/mailu'
# Mailu's Dovecot writes mail as the image's "mail" user (core/dovecot/conf/dovecot.conf).
MAIL_UID, MAIL_GID = 8, 12


def test_restored_mail_is_owned_as_dovecot_writes_it(host):
    out = host.check_output("find %s/mail -mindepth 1 \\( ! -uid %s -o ! -gid %s \\) -printf '%%p\\n'",
                            ROOT, str(MAIL_UID), str(MAIL_GID))
    assert out == ''
    assert int(host.check_output("find %s/mail -path '*/cur/*' -type f | wc -l", ROOT)) >= 40


def test_the_imap_container_sees_the_restored_mail(host):
    inside = host.check_output('docker exec mailu-imap-1 sh -c "ls /mail/contact@nantral.test/.Sent/cur | wc -l"')
    outside = host.check_output('ls %s/mail/contact@nantral.test/.Sent/cur | wc -l', ROOT)
    assert int(inside) == int(outside) > 0


def test_redis_serves_the_restored_learned_data(host):
    out = host.check_output('docker exec mailu-redis-1 redis-cli HGET RS_learns_spam contact@nantral.test')
    assert out == '14'


def test_the_backup_is_fresh_and_nothing_failed(host):
    status = json.loads(host.check_output('nantral-mailu-backup status --json'))
    assert status['repository'] == 'ok'
    assert status['fresh'] and status['problems'] == []
    assert status['last_backup']['result'] == 'ok' and status['last_check']['result'] == 'ok'


def test_the_backup_timers_run_on_the_rebuilt_server(host):
    for timer in ('nantral-mailu-backup', 'nantral-mailu-backup-forget', 'nantral-mailu-backup-check'):
        unit = host.service('%s.timer' % timer)
        assert unit.is_enabled and unit.is_running


def test_no_backup_unit_is_failed(host):
    assert 'nantral-mailu-backup' not in host.check_output('systemctl --failed --plain --no-legend')
