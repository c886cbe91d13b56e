#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2025, fate.flow contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r'''
module: model_transfer
short_description: Move a FATE model archive from one inventory host to another
version_added: 0.1.0
description:
  - Copies one file, normally the zip that FATE Flow's migrate wrote into a source party's temp directory, from
    O(src_host) to O(dest_host) (by default the host the task runs for), without staging it on the controller.
  - In the default O(transfer_mode=relay) the controller opens one SSH connection to each host, built from that
    host's own connection variables (C(ansible_host), C(ansible_port), C(ansible_user),
    C(ansible_ssh_private_key_file), C(ansible_ssh_common_args), C(ansible_ssh_extra_args), C(ssh_args), become),
    and joins the two data streams with a kernel pipe. The file is never held whole in memory nor written to the
    controller's disk, and the stream is not compressed (model archives are zip files already).
    A host with C(ansible_connection=local) is read or written directly on the controller.
  - With O(transfer_mode=direct) the destination host pulls the file from the source host with its own C(ssh)
    client; the controller only starts it and reads progress.
  - The data is written to C(.<name>.part) next to the destination and renamed onto it only after the sha256 the
    destination computed for it matches the one the source computed while reading the file. When the source has FATE's C(<archive>.sha1)
    sidecar, the archive's sha1 must match it too. A partial file never sits at the destination path.
  - When the destination already holds a file with the same sha256, nothing moves and the task reports
    C(changed=false) (owner, group and mode are still corrected). A C(.part) file left by an interrupted run is
    resumed when its content matches the start of the source, and is otherwise rewritten from the beginning.
  - This is an action plugin; the module file only holds its documentation.
author:
  - fate.flow maintainers (!UNKNOWN)
options:
  src_host:
    description:
      - Inventory name of the host that holds the file. Its connection variables are used to reach it.
    type: str
    required: true
  src:
    description:
      - Absolute path of the file on O(src_host). Names may contain C(#), spaces and any other character.
    type: str
    required: true
  dest_host:
    description:
      - Inventory name of the host that receives the file.
      - By default the host the task runs for (with C(delegate_to), the delegated host), through the task's own
        connection.
    type: str
  dest:
    description:
      - Absolute destination path on the destination host.
      - When it ends with C(/) or names an existing directory, the file keeps its name (the basename of O(src))
        inside that directory.
    type: str
    required: true
  transfer_mode:
    description:
      - V(relay) streams the file through the controller over two SSH connections. Only the controller needs to
        reach both hosts.
      - V(direct) makes the destination host connect to the source host with C(ssh) and pull the file itself.
        Use it only when the destination is allowed to log in to the source; see O(direct_ssh_args).
    type: str
    choices: [relay, direct]
    default: relay
  verify:
    description:
      - The source computes the sha256 of the whole file (and its sha1 when a C(.sha1) sidecar exists) while it
        reads it, and the destination computes the sha256 of the whole C(.part) file while it writes it. The file
        is renamed into place only when both match, whatever this option says.
      - When V(true), the destination reads every block back from the file right after writing it and hashes what
        it read (so a resumed prefix and every appended block are checked as stored). When V(false), it hashes
        the blocks as received, which saves a memory copy per block.
    type: bool
    default: true
  owner:
    description: Owner (name or uid) of the destination file. By default the user that writes it.
    type: str
  group:
    description: Group (name or gid) of the destination file. By default the writing user's group.
    type: str
  mode:
    description:
      - Permissions of the destination file, as an octal string such as V('0640').
      - Also applied to a destination that already holds the same data.
    type: raw
    default: '0600'
  force:
    description:
      - When V(false), a destination file that exists is never replaced, whatever its content.
      - When V(true), a destination file whose sha256 differs from the source's is replaced.
    type: bool
    default: true
  resume:
    description:
      - Continue an interrupted transfer from its C(.part) file when the C(.part) content equals the start of the
        source (compared by sha256). When V(false), or when the contents differ, the transfer starts over.
    type: bool
    default: true
  create_dest_dir:
    description:
      - Create the destination directory (and its parents) when it is missing. Otherwise a missing directory is
        an error.
    type: bool
    default: false
  check_space:
    description:
      - Before moving anything, compare the free space of the destination file system (as C(df) reports it for
        unprivileged users) with the bytes that will be written, and fail early when it is not enough.
      - Running out of space during the transfer is always detected, whatever this option says; set V(false) only
        where the free space reported is not meaningful (some network or quota-managed file systems).
    type: bool
    default: true
  buffer_size:
    description:
      - Size in bytes of each pipe between the two connections on the controller. Memory used on the controller
        does not grow with the file size.
      - The helpers on the hosts read, hash and write in blocks of this size or 64 KiB, whichever is smaller
        (larger blocks no longer fit the CPU cache and cost more system time).
    type: int
    default: 1048576
  progress_interval:
    description:
      - Seconds between progress lines (bytes moved, percent, MiB/s, time left) shown at normal verbosity while a
        transfer runs. V(0) turns them off.
    type: float
    default: 5.0
  direct_source_address:
    description:
      - O(transfer_mode=direct) only. The address the destination host uses to reach the source host. Defaults to
        the source's C(ansible_host).
    type: str
  direct_source_port:
    description:
      - O(transfer_mode=direct) only. SSH port of the source as seen from the destination. Defaults to the
        source's C(ansible_port).
    type: int
  direct_source_user:
    description:
      - O(transfer_mode=direct) only. User the destination logs in as on the source. Defaults to the source's
        C(ansible_user).
    type: str
  direct_ssh_args:
    description:
      - O(transfer_mode=direct) only. Extra arguments for the C(ssh) client that runs on the destination host, for
        example V(-i /home/app/.ssh/id_transfer -o StrictHostKeyChecking=yes), split like a shell would.
      - The client runs in batch mode (no password prompt), so the destination needs a key the source accepts.
    type: str
    default: ''
  stream_ciphers:
    description:
      - Cipher preference (an ssh C(Ciphers) list, comma-separated) for the SSH connections that carry the data
        (the two data streams in O(transfer_mode=relay), the destination's C(ssh) to the source in
        O(transfer_mode=direct)). In relay mode that is the one connection per host that also inspects and hashes.
      - The default puts AES-GCM first, which processors with AES instructions encrypt at about twice the speed of
        OpenSSH's default C(chacha20-poly1305@openssh.com), and otherwise lists the same ciphers as OpenSSH's
        default; the server picks the first one it also supports. Every OpenSSH since 6.5 understands the list.
      - It is only applied when the host's own settings do not choose ciphers. For relay, the host's C(ssh_args),
        C(ansible_ssh_common_args) and C(ansible_ssh_extra_args) are searched for C(-c) and C(-o Ciphers), and
        C(ssh -G) tells whether an ssh configuration file (C(-F), C(~/.ssh/config), C(/etc/ssh/ssh_config))
        sets them; for direct, O(direct_ssh_args) and C(ssh -G) on the destination. When C(ssh -G) cannot tell
        (OpenSSH older than 6.8), ssh is left as it is.
      - An empty string leaves the cipher choice to ssh everywhere.
    type: str
    default: aes128-gcm@openssh.com,aes256-gcm@openssh.com,chacha20-poly1305@openssh.com,aes128-ctr,aes192-ctr,aes256-ctr
attributes:
  check_mode:
    support: full
    details: Both hosts are inspected (and files hashed when needed) but nothing is written; the result tells how
      many bytes would move.
  diff_mode:
    support: none
  idempotent:
    support: full
    details: A destination that already holds the same sha256 is left in place and only its owner, group and mode
      are corrected.
  action:
    description: Runs as an action plugin on the controller, which starts the connections to both hosts.
    support: full
  async:
    description: Supports being used with the C(async) keyword.
    support: none
extends_documentation_fragment:
  - fate.flow.attributes.host_module
notes:
  - Both hosts need the C(ansible_connection) V(ssh) (or V(smart)) or V(local), and a Python 3 interpreter
    (C(ansible_python_interpreter), otherwise V(python3)), which runs small read, write and hash helpers.
  - Become is supported with the V(sudo) method (with or without a password) and with V(su) when the connecting
    user is root. The data streams use the become user of each host, so that user must be able to read O(src)
    and write the destination directory.
  - Password authentication uses C(sshpass) as the C(ssh) connection plugin does. Each host gets one connection of
    its own for the whole task (inspection, hashing and, in relay mode, the data), without compression, without the
    C(ControlPersist) master (which may have been opened with C(-C)) and with the cipher preference of
    O(stream_ciphers), so each host costs one SSH handshake per task.
  - In O(transfer_mode=direct), the destination logs in to the source. That gives the destination's key access to
    the source host; only use it between hosts that already trust each other.
seealso:
  - module: fate.flow.model_migrate
  - module: fate.flow.model_import
  - module: ansible.builtin.copy
  - module: ansible.posix.synchronize
'''

EXAMPLES = r'''
- name: Move the migrated guest archive from party 9999 to party 99
  fate.flow.model_transfer:
    src_host: party9999
    src: "/data/projects/fate/temp/fate_flow/guest#99#arbiter-100#guest-99#host-100#model_202012101427.zip"
    dest: /data/projects/fate/temp/incoming/
    create_dest_dir: true
    owner: app
    group: apps
    mode: '0640'
  delegate_to: party99

- name: Same, for a host that pulls from the source itself (the two hosts trust each other)
  fate.flow.model_transfer:
    src_host: party10000
    src: "{{ migrated_archive }}"
    dest_host: party100
    dest: /data/projects/fate/temp/incoming/
    transfer_mode: direct
    direct_ssh_args: -i /home/app/.ssh/id_transfer -o StrictHostKeyChecking=yes
  run_once: true

- name: Only report what would move
  fate.flow.model_transfer:
    src_host: party9999
    src: "{{ migrated_archive }}"
    dest: /data/projects/fate/temp/incoming/
  check_mode: true
  register: would
'''

RETURN = r'''
src:
  description: The source path.
  returned: always
  type: str
src_host:
  description: The source inventory host.
  returned: always
  type: str
dest:
  description: The final destination path (with the source's basename when O(dest) is a directory).
  returned: when the destination was inspected
  type: str
  sample: /data/projects/fate/temp/incoming/guest#99#arbiter-100#guest-99#host-100#model_202012101427.zip
dest_host:
  description: The destination inventory host.
  returned: always
  type: str
size:
  description: Size of the source file in bytes.
  returned: when the source was inspected
  type: int
bytes_transferred:
  description: Bytes sent over the network by this run (in check mode, the bytes that would be sent). V(0) when
    the destination already held the same data.
  returned: always
  type: int
sha256:
  description: sha256 of the file (the same on both hosts).
  returned: success
  type: str
sha1:
  description: sha1 of the file, checked against the source's C(.sha1) sidecar.
  returned: when the source has a C(.sha1) sidecar
  type: str
seconds:
  description: Duration of the task in seconds.
  returned: success
  type: float
throughput:
  description: Transfer speed in MiB/s of the data stream (V(0) when nothing moved).
  returned: success
  type: float
resumed:
  description: Whether an interrupted transfer was continued from its C(.part) file.
  returned: always
  type: bool
resumed_from:
  description: Offset in bytes the transfer continued from.
  returned: when something moved or would move
  type: int
verified:
  description: Whether the destination hashed what it read back from the file (O(verify)) rather than the blocks
    as received. Either way the sha256 matched the source's before the rename.
  returned: when something moved
  type: bool
transfer_mode:
  description: The transfer mode used.
  returned: always
  type: str
owner:
  description: Owner of the destination file.
  returned: success
  type: str
group:
  description: Group of the destination file.
  returned: success
  type: str
mode:
  description: Permissions of the destination file.
  returned: success
  type: str
  sample: '0600'
needed_bytes:
  description: Bytes that had to be written at the destination.
  returned: when the destination has not enough space
  type: int
free_bytes:
  description: Free bytes at the destination.
  returned: when the space check failed
  type: int
'''
