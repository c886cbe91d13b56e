#!/usr/bin/env python3
"""Stage the collection as it ships into <dest> (normally build/ansible_collections/fate/flow).

* Source files: `git ls-files --cached --others --exclude-standard` (tracked plus new, not ignored),
  or a plain walk when the source is not a git checkout.
* Left out: what `ansible-galaxy collection build` leaves out, i.e. galaxy.yml's build_ignore
  patterns plus its built-in ones (matched with fnmatch against the relative path of every file
  and every parent directory, as ansible-galaxy does). galaxy.yml itself is kept, because
  ansible-test and ansible-lint read it (a built artifact carries MANIFEST.json instead).
* Incremental: unchanged files (same size and mtime) are not copied again; files that are no longer
  shipped are removed. tests/output (ansible-test's results), .ansible (ansible-lint's cache) and
  .git are kept.
* The staged copy is its own small git work tree (nothing committed), so that ansible-test and
  ansible-lint list exactly its files and not the enclosing checkout's (build/ is ignored there).
"""

import argparse
import fnmatch
import os
import shutil
import subprocess
import sys

import yaml

# Always left out by ansible-galaxy (ansible/galaxy/collection/__init__.py, 2.19).
GALAXY_DEFAULT_IGNORES = ['MANIFEST.json', 'FILES.json', 'galaxy.yaml', '.git', '*.pyc', '*.retry', 'tests/output']
GALAXY_IGNORE_DIRS = {'CVS', '.bzr', '.hg', '.git', '.svn', '__pycache__', '.tox'}
# Present in the staged copy but not produced from the source: keep them between runs.
KEEP_IN_DEST = {'.git', '.ansible', 'tests/output'}
# Written to the staged copy's .git/info/exclude so git (and tools that ask git) skip them.
DEST_EXCLUDES = ['/tests/output/', '/.ansible/', '__pycache__/', '*.pyc']
# When the source is not a git checkout, also skip these (normally .gitignore does it).
WALK_SKIP = {'.venv', '.cache', '.sandbox', 'build', '.pytest_cache', '.mypy_cache', 'node_modules'}


def read_galaxy(source):
    with open(os.path.join(source, 'galaxy.yml'), encoding='utf-8') as handle:
        galaxy = yaml.safe_load(handle) or {}
    if galaxy.get('manifest') is not None:
        sys.exit('stage_collection.py: galaxy.yml uses "manifest:"; only "build_ignore:" is supported')
    return galaxy


def ignore_patterns(galaxy):
    namespace, name = galaxy.get('namespace', '*'), galaxy.get('name', '*')
    return GALAXY_DEFAULT_IGNORES + ['%s-%s-*.tar.gz' % (namespace, name)] + list(galaxy.get('build_ignore') or [])


def is_shipped(rel_path, patterns):
    parts = rel_path.split('/')
    for depth in range(1, len(parts) + 1):
        prefix = '/'.join(parts[:depth])
        if depth < len(parts) and parts[depth - 1] in GALAXY_IGNORE_DIRS:
            return False
        if any(fnmatch.fnmatch(prefix, pattern) for pattern in patterns):
            return False
    return True


def source_files(source):
    if os.path.exists(os.path.join(source, '.git')):
        out = subprocess.run(
            ['git', '-C', source, 'ls-files', '-z', '--cached', '--others', '--exclude-standard'],
            check=True, stdout=subprocess.PIPE,
        ).stdout.decode('utf-8', 'surrogateescape')
        return sorted({path for path in out.split('\0') if path})
    found = []
    for root, dirs, files in os.walk(source):
        rel_root = os.path.relpath(root, source)
        dirs[:] = [d for d in dirs if not (rel_root == '.' and d in WALK_SKIP)]
        for file_name in files:
            found.append(os.path.normpath(os.path.join(rel_root, file_name)).replace(os.sep, '/'))
    return sorted(found)


def same_file(src, dst):
    if os.path.islink(src) or os.path.islink(dst):
        return os.path.islink(src) and os.path.islink(dst) and os.readlink(src) == os.readlink(dst)
    try:
        a, b = os.stat(src), os.stat(dst)
    except FileNotFoundError:
        return False
    return a.st_size == b.st_size and a.st_mtime_ns == b.st_mtime_ns and a.st_mode == b.st_mode


def copy(src, dst):
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    if os.path.lexists(dst) and (os.path.islink(dst) or not os.path.isfile(dst)):
        if os.path.isdir(dst) and not os.path.islink(dst):
            shutil.rmtree(dst)
        else:
            os.unlink(dst)
    if os.path.islink(src):
        os.symlink(os.readlink(src), dst)
    else:
        shutil.copy2(src, dst)


def kept(rel_path):
    return any(rel_path == keep or rel_path.startswith(keep + '/') for keep in KEEP_IN_DEST)


def prune(dest, wanted):
    removed = 0
    for root, dirs, files in os.walk(dest, topdown=False):
        rel_root = os.path.relpath(root, dest).replace(os.sep, '/')
        rel_root = '' if rel_root == '.' else rel_root
        if rel_root and kept(rel_root):
            continue
        for file_name in files + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
            rel_path = (rel_root + '/' if rel_root else '') + file_name
            if rel_path not in wanted and not kept(rel_path):
                os.unlink(os.path.join(root, file_name))
                removed += 1
        if rel_root and not os.listdir(root):
            os.rmdir(root)
    return removed


def init_git(dest):
    if not os.path.isdir(os.path.join(dest, '.git')):
        subprocess.run(['git', 'init', '--quiet', dest], check=True)
    with open(os.path.join(dest, '.git', 'info', 'exclude'), 'w', encoding='utf-8') as handle:
        handle.write('# written by scripts/lib/stage_collection.py\n' + '\n'.join(DEST_EXCLUDES) + '\n')


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--source', required=True, help='collection source (the repository root)')
    parser.add_argument('--dest', required=True, help='.../ansible_collections/<namespace>/<name>')
    parser.add_argument('--list', action='store_true', help='print the shipped files and stop')
    args = parser.parse_args()

    source = os.path.realpath(args.source)
    dest = os.path.abspath(args.dest)
    galaxy = read_galaxy(source)
    expected_tail = ['ansible_collections', galaxy.get('namespace'), galaxy.get('name')]
    if dest.split(os.sep)[-3:] != expected_tail:
        sys.exit('stage_collection.py: --dest must end in %s' % '/'.join(expected_tail))

    patterns = ignore_patterns(galaxy)
    shipped = [path for path in source_files(source)
               if is_shipped(path, patterns) and os.path.lexists(os.path.join(source, path))
               and not (os.path.isdir(os.path.join(source, path)) and not os.path.islink(os.path.join(source, path)))]

    if args.list:
        print('\n'.join(shipped))
        return

    os.makedirs(dest, exist_ok=True)
    updated = 0
    for rel_path in shipped:
        src, dst = os.path.join(source, rel_path), os.path.join(dest, rel_path)
        if not same_file(src, dst):
            copy(src, dst)
            updated += 1
    removed = prune(dest, set(shipped))
    init_git(dest)
    print('staged %d files into %s (%d copied, %d removed)'
          % (len(shipped), os.path.relpath(dest, source) if dest.startswith(source + os.sep) else dest, updated, removed))


if __name__ == '__main__':
    main()
