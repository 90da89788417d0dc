"""The run layer every stage goes through: run directories, identity, lock, manifest and file I/O.

`io` (atomic writes, JSON, sha256), `npz` (the npz reader/validator), `identity` (what a run is),
`lock` (one writer per run dir) and `layout` (where things live); no sampling or metric math here.
"""
