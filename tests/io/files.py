"""Hand-made model files for the tests: take a file apart and put it back together (with or
without a valid SHA-256) following the format's description, not qdaed's code."""

import hashlib
import json
import struct


def split(data):
    """(JSON table text, data section) of a safetensors file's bytes."""
    (n,) = struct.unpack("<Q", data[:8])
    return data[8:8 + n].decode("utf-8"), data[8 + n:]


def document(data):
    """The qdaed document string of a model file's bytes."""
    return json.loads(split(data)[0])["__metadata__"]["qdaed"]


def sha256(doc_text, body):
    """The digest as the format defines it: SHA-256(len(doc) LE u64 ‖ doc ‖ data section)."""
    raw = doc_text.encode("utf-8")
    return hashlib.sha256(struct.pack("<Q", len(raw)) + raw + body).hexdigest()


def assemble(table_text, body):
    raw = table_text.encode("utf-8")
    return struct.pack("<Q", len(raw)) + raw + body


def with_document(data, doc_text, resign=True):
    """The file with its document replaced by ``doc_text`` (any text, even invalid JSON),
    the digest recomputed (``resign``) or left as it was."""
    table_text, body = split(data)
    table = json.loads(table_text)
    table["__metadata__"]["qdaed"] = doc_text
    if resign:
        table["__metadata__"]["qdaed_sha256"] = sha256(doc_text, body)
    return assemble(json.dumps(table), body)


DELETE = object()      # set_field's value that removes the field


def set_field(path, value):
    """An edit for :func:`edit_document`: the field at ``path`` (keys from the document's root)
    set to ``value``, or removed when ``value`` is ``DELETE``."""
    def edit(doc):
        *head, last = path
        for k in head:
            doc = doc[k]
        if value is DELETE:
            del doc[last]
        else:
            doc[last] = value
    return edit


def edit_document(data, edit, resign=True):
    """The file with ``edit(doc_dict)`` applied to its parsed document (in place)."""
    doc = json.loads(document(data))
    edit(doc)
    return with_document(data, json.dumps(doc, sort_keys=True, separators=(",", ":")),
                         resign)


def edit_table(data, edit):
    """The file with ``edit(table_dict)`` applied to its JSON table (the digest does not
    cover the table: the loader must check it against the document)."""
    table_text, body = split(data)
    table = json.loads(table_text)
    edit(table)
    return assemble(json.dumps(table), body)


def edit_body(data, edit, resign=True):
    """The file with its data section replaced by ``edit(bytearray)``'s result."""
    table_text, body = split(data)
    new = bytes(edit(bytearray(body)))
    table = json.loads(table_text)
    if resign:
        table["__metadata__"]["qdaed_sha256"] = sha256(table["__metadata__"]["qdaed"], new)
    return assemble(json.dumps(table), new)
