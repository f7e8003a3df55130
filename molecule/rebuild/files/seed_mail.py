"""Write real mail into Mailu's maildirs, as Mailu's Dovecot lays it out.

    seed_mail.py ROOT

ROOT is the host's mail directory (/mailu/mail). Mailu's Dovecot stores each user's
mail in ROOT/<email>/ in Maildir++ layout (mail_location = maildir:/mail/%u) and
writes it as the Alpine image's "mail" user (mail_uid = mail: uid 8, gid 12;
core/dovecot/conf/dovecot.conf), directories 0700 and files 0600. The messages are
RFC 5322 text of realistic sizes, one with a base64 attachment; each folder has
Dovecot's own files beside them (uid list, index log). The content is a function of
the seed alone, so a second run writes nothing new. Prints what it wrote as JSON.
"""

import base64
import email.utils
import json
import os
import random
import sys

MAIL_UID, MAIL_GID = 8, 12
HOSTNAME = 'mail.nantral.test'
# user -> folders (Maildir++ names; '' is INBOX); no-reply@ never received mail: no directory.
MAILBOXES = {
    'admin@nantral.test': ['', '.Sent', '.Drafts', '.Trash'],
    'contact@nantral.test': ['', '.Sent', '.Junk', '.Archive', '.Archive.2025'],
    'group-manager@nantral.test': ['', '.Sent'],
}
WORDS = ('mail server backup restore snapshot invoice meeting agenda report quarterly budget '
         'holiday schedule delivery rebuild inventory password key archive folder message').split()


def makedirs(path):
    if not os.path.isdir(path):
        os.mkdir(path, 0o700)
    os.chown(path, MAIL_UID, MAIL_GID)
    os.chmod(path, 0o700)


def write(path, data, written):
    if os.path.exists(path):
        return
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, 'wb') as handle:
        handle.write(data)
    os.chown(path, MAIL_UID, MAIL_GID)
    written.append(path)


def words(rng, count):
    return ' '.join(rng.choice(WORDS) for word in range(count))


def message(rng, user, folder, number):
    sender = user if folder == '.Sent' else 'someone%d@example.org' % rng.randrange(100)
    rcpt = 'friend%d@example.net' % rng.randrange(100) if folder == '.Sent' else user
    date = email.utils.formatdate(1735689600 + number * 86400 + rng.randrange(86400), localtime=False)
    subject = words(rng, rng.randrange(2, 7)).capitalize()
    paragraphs = ['\r\n'.join(words(rng, 12) for line in range(rng.randrange(1, 30)))
                  for paragraph in range(rng.randrange(1, 8))]
    headers = [
        'Return-Path: <%s>' % sender,
        'Received: from mx.example.org (mx.example.org [198.51.100.%d])\r\n\tby %s (Postfix) with ESMTPS; %s'
        % (rng.randrange(1, 255), HOSTNAME, date),
        'Message-ID: <%08x.%d@%s>' % (rng.getrandbits(32), number, sender.split('@')[1]),
        'Date: %s' % date,
        'From: <%s>' % sender,
        'To: <%s>' % rcpt,
        'Subject: %s' % subject,
        'MIME-Version: 1.0',
    ]
    body = '\r\n\r\n'.join(paragraphs) + '\r\n'
    if number % 7 == 3:  # an attachment, as most large mail is
        boundary = '=_%016x' % rng.getrandbits(64)
        blob = base64.encodebytes(rng.randbytes(rng.randrange(20000, 300000))).decode().replace('\n', '\r\n')
        headers.append('Content-Type: multipart/mixed; boundary="%s"' % boundary)
        body = ('--%s\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n%s\r\n--%s\r\n'
                'Content-Type: application/pdf; name="report-%d.pdf"\r\nContent-Transfer-Encoding: base64\r\n'
                'Content-Disposition: attachment; filename="report-%d.pdf"\r\n\r\n%s--%s--\r\n'
                % (boundary, body, boundary, number, number, blob, boundary))
    else:
        headers.append('Content-Type: text/plain; charset=utf-8')
    return ('\r\n'.join(headers) + '\r\n\r\n' + body).encode()


def seed(root):
    rng = random.Random(9)
    written = []
    counts = {}
    for user, folders in MAILBOXES.items():
        home = os.path.join(root, user)
        makedirs(home)
        for folder in folders:
            path = os.path.join(home, folder) if folder else home
            makedirs(path)
            for sub in ('cur', 'new', 'tmp'):
                makedirs(os.path.join(path, sub))
            if folder:
                write(os.path.join(path, 'maildirfolder'), b'', written)
            uids = []
            for number in range(rng.randrange(3, 9)):
                data = message(rng, user, folder, number)
                seen = number % 3 != 0 or folder in ('.Sent', '.Drafts')
                base = '%d.M%dP%d.%s,S=%d,W=%d' % (1735689600 + number * 86400, rng.randrange(10 ** 6),
                                                   rng.randrange(100, 30000), HOSTNAME, len(data),
                                                   len(data) + data.count(b'\n'))
                name = os.path.join('cur', base + ':2,S') if seen else os.path.join('new', base)
                write(os.path.join(path, name), data, written)
                uids.append('%d :%s' % (len(uids) + 1, base))
                counts[user] = counts.get(user, 0) + 1
            write(os.path.join(path, 'dovecot-uidlist'),
                  ('3 V%d N%d G%032x\n' % (1735689600, len(uids) + 1, rng.getrandbits(128))
                   + '\n'.join(uids) + '\n').encode(), written)
            write(os.path.join(path, 'dovecot.index.log'), rng.randbytes(rng.randrange(500, 4000)), written)
        write(os.path.join(home, 'subscriptions'),
              ('V\t2\n\n' + '\n'.join(f.lstrip('.') for f in folders if f) + '\n').encode(), written)
        write(os.path.join(home, 'dovecot-uidvalidity'), b'%08x\n' % 1735689600, written)
        write(os.path.join(home, 'dovecot.list.index.log'), rng.randbytes(rng.randrange(200, 2000)), written)
    return {'written': len(written), 'messages': counts}


if __name__ == '__main__':
    result = seed(sys.argv[1])
    print(json.dumps(result))
    sys.exit(0)
