"""A local stand-in for the Hugging Face Hub: as much of its HTTP protocol as the real `huggingface_hub` client
(2.x) needs to create repos, commit (regular and LFS files, deletions), list and download. Standard library only.

Endpoints (`{type}` is model/dataset/space/kernel, `{prefix}` is "" for models, else "datasets/", "spaces/", ...;
`{rev}` is "main", a commit oid or a named ref (add_ref); repo ids are "namespace/name"):

    GET      /api/whoami-v2                                 whoami; 401 for an unknown token
    POST     /api/repos/create                              create_repo (private, space sdk); 409 if it exists
    POST     /api/validate-yaml                             README.md metadata check (always valid)
    GET      /api/{type}s/{repo_id}[/revision/{rev}]        repo_info / model_info / space_info (siblings included)
    GET      /api/{type}s/{repo_id}/tree/{rev}[/{path}]     list_repo_tree / list_repo_files (a single page)
    POST     /api/{type}s/{repo_id}/preupload/{rev}         upload mode: "lfs" over LFS_THRESHOLD or for LFS_SUFFIXES
    POST     /api/{type}s/{repo_id}/commit/main             NDJSON commit (file, lfsFile, deletedFile, deletedFolder)
    GET/POST /api/spaces/{repo_id}/variables               get_space_variables / add_space_variable
    POST     /{prefix}{repo_id}.git/info/lfs/objects/batch  LFS batch API, "basic" transfer: a PUT back to this server
    POST     /{prefix}{repo_id}.git/info/lfs/objects/verify LFS verify step
    PUT      /lfs-objects/{sha256}?key=...                  LFS upload; the one-time key from the batch call is the auth
    HEAD/GET /{prefix}{repo_id}/resolve/{rev}/{path}        download: ETag, X-Repo-Commit, X-Linked-Etag/-Size

Xet: huggingface_hub 2.x picks Xet for uploads on its own, with no say from the server, whenever `hf_xet` is
installed and `huggingface_hub.constants.HF_HUB_DISABLE_XET` is false; so clients of this server must set it, or
fail on a 501 from /api/{type}s/{repo_id}/xet-write-token/. Downloads use plain HTTP even with Xet enabled because
no answer carries an X-Xet-* header or a xet-auth link.
Not implemented: branches, tags, pull requests, pagination, copies, gated repos.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

LFS_THRESHOLD = 1024 * 1024  # bytes; the Hub's own limit for regular files is 10 MB, a smaller one keeps tests fast
LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".gguf", ".png")
GITATTRIBUTES = b"".join(b"*%s filter=lfs diff=lfs merge=lfs -text\n" % s.encode() for s in LFS_SUFFIXES)
INVALID_TOKEN = "Invalid credentials in Authorization header"

_TYPE = r"(?P<api_type>model|dataset|space|kernel)s"
_PREFIX = r"(?:(?P<url_type>dataset|space|kernel)s/)?"
_REPO = r"(?P<repo>[^/]+/[^/]+)"
ROUTES = [  # (methods, path regex, LocalHub method name); matched in order against the still-quoted path
    ("GET", r"/api/whoami-v2", "_whoami"),
    ("POST", r"/api/repos/create", "_create_repo"),
    ("POST", r"/api/validate-yaml", "_validate_yaml"),
    ("GET", rf"/api/{_TYPE}/{_REPO}(?:/revision/(?P<rev>[^/]+))?", "_repo_info"),
    ("GET", rf"/api/{_TYPE}/{_REPO}/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?", "_tree"),
    ("POST", rf"/api/{_TYPE}/{_REPO}/preupload/(?P<rev>[^/]+)", "_preupload"),
    ("POST", rf"/api/{_TYPE}/{_REPO}/commit/(?P<rev>[^/]+)", "_commit"),
    ("GET POST", rf"/api/(?P<api_type>space)s/{_REPO}/variables", "_space_variables"),
    ("GET POST", rf"/api/{_TYPE}/{_REPO}/xet-(?:read|write)-token/.*", "_xet_token"),
    ("POST", rf"/{_PREFIX}{_REPO}\.git/info/lfs/objects/batch", "_lfs_batch"),
    ("POST", rf"/{_PREFIX}{_REPO}\.git/info/lfs/objects/verify", "_lfs_verify"),
    ("PUT", r"/lfs-objects/(?P<oid>[0-9a-f]{64})", "_lfs_put"),
    ("GET HEAD", rf"/{_PREFIX}{_REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)", "_resolve"),
]


class HubError(Exception):
    """An error answer: JSON `{"error": message}`, with the X-Error-* headers `hf_raise_for_status` reads."""

    def __init__(self, status: int, message: str, code: str | None = None, headers: dict | None = None, **extra):
        super().__init__(message)
        self.status, self.message, self.extra = status, message, extra
        self.headers = {"X-Error-Message": message, **({"X-Error-Code": code} if code else {}), **(headers or {})}


def git_sha1(data: bytes) -> str:
    """The git blob oid, which the Hub reports for regular files (and the client computes to skip unchanged ones)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


class LocalHub:
    """In-memory repos keyed "{repo_type}/{repo_id}"; every commit keeps its whole tree {path: (sha256, is_lfs)}."""

    def __init__(self, tokens: dict[str, str] | None = None) -> None:
        self.tokens = dict(tokens or {"hf_test_token": "tester"})  # token -> user name
        self.requests: list[tuple[str, str]] = []  # (method, path), in arrival order
        self.endpoint = ""
        self._repos: dict[str, dict] = {}  # key -> {"private", "sdk", "variables", "commits": [{"oid", "tree", ...}]}
        self._objects: dict[str, bytes] = {}  # sha256 -> content, for regular and LFS files alike
        self._upload_keys: dict[str, tuple[str, int]] = {}  # one-time LFS upload key -> (sha256, size)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> str:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.hub = self  # type: ignore[attr-defined]
        self.endpoint = f"http://127.0.0.1:{self._server.server_port}"
        # a short poll interval makes stop() quick: shutdown() waits for the serving loop to poll
        serve = {"target": self._server.serve_forever, "kwargs": {"poll_interval": 0.05}}
        threading.Thread(**serve, name="local-hub", daemon=True).start()
        return self.endpoint

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def files(self, repo_id: str, repo_type: str = "model") -> dict[str, bytes]:
        tree = self._repos[f"{repo_type}/{repo_id}"]["commits"][-1]["tree"]
        return {path: self._objects[sha] for path, (sha, _) in sorted(tree.items())}

    def repos(self) -> list[str]:
        return sorted(self._repos)

    def pin(self, repo_id: str, oid: str, repo_type: str = "model") -> None:
        """Give a repo's latest commit the id `oid`, so that a revision pinned on the real Hub is served here."""
        self._repos[f"{repo_type}/{repo_id}"]["commits"][-1]["oid"] = oid

    def add_ref(self, repo_id: str, ref: str, files: dict[str, bytes], repo_type: str = "dataset") -> None:
        """A named ref beside main holding `files`, as the Hub's parquet conversion `refs/convert/parquet`."""
        tree = {}
        for path, data in files.items():
            sha = hashlib.sha256(data).hexdigest()
            self._objects[sha] = data
            tree[path] = (sha, False)
        oid = hashlib.sha1(json.dumps([repo_id, ref, sorted(tree.items())]).encode()).hexdigest()
        repo = self._repos[f"{repo_type}/{repo_id}"]
        repo.setdefault("refs", {})[ref] = {"oid": oid, "title": ref, "date": _now(), "tree": tree}

    def commits(self, repo_id: str, repo_type: str = "model") -> list[str]:
        """The titles of a repo's commits, oldest first (the first is the Hub's own "initial commit")."""
        return [commit["title"] for commit in self._repos[f"{repo_type}/{repo_id}"]["commits"]]

    # -- plumbing --------------------------------------------------------------------------------------------

    def handle(self, method: str, url: str, headers, body: bytes) -> tuple[int, dict, bytes]:
        path, query = urlsplit(url).path, parse_qs(urlsplit(url).query)
        self.requests.append((method, path))
        try:
            auth = headers.get("Authorization", "")
            token = auth[len("Bearer ") :].strip() if auth.startswith("Bearer ") else None
            if token is not None and token not in self.tokens:
                raise HubError(401, INVALID_TOKEN)
            for methods, pattern, name in ROUTES:
                match = re.fullmatch(pattern, path)
                if match and method in methods.split():
                    args = {k: unquote(v) for k, v in match.groupdict().items() if v is not None}
                    if "repo" in args:
                        args["repo_type"] = args.pop("api_type", None) or args.pop("url_type", None) or "model"
                    return getattr(self, name)(self.tokens.get(token), body, query, **args)
            raise HubError(404, f"LocalHub does not implement {method} {path}")
        except HubError as error:
            return error.status, error.headers, json.dumps({"error": error.message, **error.extra}).encode()
        except Exception as error:  # a LocalHub bug: answer it, rather than drop the connection the client would retry
            return 500, {}, json.dumps({"error": f"LocalHub failed: {error!r}"}).encode()

    def _repo(self, user: str | None, repo_type: str, repo: str, write: bool = False) -> dict:
        if write and user is None:
            raise HubError(401, "You must be authenticated to write to a repo")
        found = self._repos.get(f"{repo_type}/{repo}")
        if found is None or (found["private"] and user is None):
            raise HubError(404, f"Repository {repo_type}/{repo} not found", "RepoNotFound")
        return found

    def _revision(self, repo: dict, rev: str) -> dict:
        if rev in repo.get("refs", {}):
            return repo["refs"][rev]
        for commit in reversed(repo["commits"]):
            if rev in ("main", commit["oid"]):
                return commit
        raise HubError(404, f"Invalid rev id: {rev}", "RevisionNotFound")

    def _add_commit(self, key: str, title: str, tree: dict) -> dict:
        commits = self._repos[key]["commits"]
        parent = commits[-1]["oid"] if commits else ""
        oid = hashlib.sha1(json.dumps([key, parent, title, sorted(tree.items()), time.time_ns()]).encode()).hexdigest()
        commits.append({"oid": oid, "title": title, "date": _now(), "tree": tree})
        return commits[-1]

    def _url(self, repo_type: str, repo_id: str) -> str:
        return f"{self.endpoint}/{'' if repo_type == 'model' else repo_type + 's/'}{repo_id}"

    def _file_entry(self, path: str, sha: str, lfs: bool) -> dict:
        data = self._objects[sha]
        entry = {"type": "file", "path": path, "size": len(data), "oid": git_sha1(data)}
        if lfs:
            pointer = lfs_pointer(sha, len(data))
            entry.update(oid=git_sha1(pointer), lfs={"oid": sha, "size": len(data), "pointerSize": len(pointer)})
        return entry

    # -- account and repos -----------------------------------------------------------------------------------

    def _whoami(self, user, body, query):
        if user is None:
            raise HubError(401, INVALID_TOKEN)
        auth = {"type": "access_token", "accessToken": {"displayName": "local-hub", "role": "write"}}
        return _json({"type": "user", "name": user, "fullname": user, "orgs": [], "auth": auth})

    def _create_repo(self, user, body, query):
        if user is None:
            raise HubError(401, "You must be authenticated to create a repo")
        payload = json.loads(body)
        repo_type, repo_id = payload.get("type") or "model", f"{payload.get('organization') or user}/{payload['name']}"
        if repo_type == "space" and not payload.get("sdk"):
            raise HubError(400, "A Space needs an sdk")
        key, url = f"{repo_type}/{repo_id}", self._url(repo_type, repo_id)
        with self._lock:
            if key in self._repos:
                raise HubError(409, f"You already created this {repo_type} repo: {repo_id}", url=url)
            private = payload.get("visibility") == "private" or bool(payload.get("private"))
            self._repos[key] = {"private": private, "sdk": payload.get("sdk"), "variables": {}, "commits": []}
            sha = hashlib.sha256(GITATTRIBUTES).hexdigest()
            self._objects[sha] = GITATTRIBUTES
            self._add_commit(key, "initial commit", {".gitattributes": (sha, False)})  # as the Hub does
        return _json({"url": url, "name": repo_id, "id": repo_id})

    def _validate_yaml(self, user, body, query):
        return _json({"errors": [], "warnings": []})

    def _space_variables(self, user, body, query, repo, repo_type):
        variables = self._repo(user, repo_type, repo, write=bool(body))["variables"]
        if body:  # add_space_variable
            payload = json.loads(body)
            description = payload.get("description")
            variables[payload["key"]] = {"value": payload["value"], "description": description, "updatedAt": _now()}
        return _json(variables)

    def _xet_token(self, user, body, query, repo, repo_type):
        raise HubError(501, "LocalHub speaks LFS only: set huggingface_hub.constants.HF_HUB_DISABLE_XET = True")

    def _repo_info(self, user, body, query, repo, repo_type, rev="main"):
        found = self._repo(user, repo_type, repo)
        commit = self._revision(found, rev)
        siblings = []
        for path, (sha, lfs) in sorted(commit["tree"].items()):
            entry = self._file_entry(path, sha, lfs)
            sibling = {"rfilename": path, "size": entry["size"], "blobId": entry["oid"], "lfs": None}
            if lfs:
                sibling["lfs"] = {"size": entry["size"], "sha256": sha, "pointerSize": entry["lfs"]["pointerSize"]}
            siblings.append(sibling)
        info = {"id": repo, "author": repo.split("/")[0], "sha": commit["oid"], "private": found["private"],
                "createdAt": found["commits"][0]["date"], "lastModified": commit["date"], "siblings": siblings}
        if repo_type == "space":
            info["sdk"] = found["sdk"]
        return _json(info)

    # -- trees and downloads ---------------------------------------------------------------------------------

    def _tree(self, user, body, query, repo, repo_type, rev, path=""):
        tree = self._revision(self._repo(user, repo_type, repo), rev)["tree"]
        recursive = query.get("recursive", ["false"])[0].lower() in ("1", "true")
        base = path.strip("/") + "/" if path.strip("/") else ""
        files, folders = [], set()
        for file_path in sorted(tree):
            if not file_path.startswith(base):
                continue
            parts = file_path[len(base) :].split("/")
            folders.update(base + "/".join(parts[:i]) for i in range(1, len(parts)) if recursive or i == 1)
            if recursive or len(parts) == 1:
                files.append(self._file_entry(file_path, *tree[file_path]))
        if base and not files and not folders:
            raise HubError(404, f"{path} does not exist on {rev}", "EntryNotFound")
        dirs = [{"type": "directory", "path": d, "oid": hashlib.sha1(d.encode()).hexdigest()} for d in sorted(folders)]
        return _json(dirs + files)

    def _resolve(self, user, body, query, repo, repo_type, rev, path):
        commit = self._revision(self._repo(user, repo_type, repo), rev)
        if path not in commit["tree"]:
            raise HubError(404, f"{path} does not exist on {rev}", "EntryNotFound", {"X-Repo-Commit": commit["oid"]})
        sha, lfs = commit["tree"][path]
        entry = self._file_entry(path, sha, lfs)
        headers = {"Content-Type": "application/octet-stream", "X-Repo-Commit": commit["oid"]}
        headers["ETag"] = f'"{entry["oid"]}"'  # git blob oid; for LFS files that of the pointer, as on the Hub
        if lfs:  # the Hub redirects these to its CDN and puts the content's sha256 and size in X-Linked-*
            headers.update({"X-Linked-Etag": f'"{sha}"', "X-Linked-Size": str(entry["size"])})
        return 200, headers, self._objects[sha]

    # -- uploads ---------------------------------------------------------------------------------------------

    def _preupload(self, user, body, query, repo, repo_type, rev):
        tree = self._revision(self._repo(user, repo_type, repo, write=True), rev)["tree"]
        answers = []
        for file in json.loads(body)["files"]:
            mode = "lfs" if file["size"] > LFS_THRESHOLD or file["path"].endswith(LFS_SUFFIXES) else "regular"
            oid = None  # the client skips a file whose oid matches its own: sha256 for LFS, git sha1 for regular
            if file["path"] in tree:
                sha = tree[file["path"]][0]
                oid = sha if mode == "lfs" else git_sha1(self._objects[sha])
            answers.append({"path": file["path"], "uploadMode": mode, "shouldIgnore": False, "oid": oid})
        return _json({"files": answers})

    def _commit(self, user, body, query, repo, repo_type, rev):
        found = self._repo(user, repo_type, repo, write=True)
        if rev != "main" or "create_pr" in query:
            raise HubError(400, "LocalHub only commits to main")
        header, *operations = [json.loads(line) for line in body.splitlines() if line.strip()]
        with self._lock:  # build the new tree aside and store it only if every operation applies: all or nothing
            head = found["commits"][-1]
            parent = header["value"].get("parentCommit")
            if parent is not None and parent != head["oid"]:
                raise HubError(412, f"A commit has happened since {parent}")
            tree, objects = dict(head["tree"]), {}
            for operation in operations:
                key, value = operation["key"], operation["value"]
                if key == "file":
                    data = base64.b64decode(value["content"])
                    sha = hashlib.sha256(data).hexdigest()
                    objects[sha], tree[value["path"]] = data, (sha, False)
                elif key == "lfsFile":
                    if value["oid"] not in self._objects:
                        raise HubError(422, f"LFS object {value['oid']} for '{value['path']}' was never uploaded")
                    tree[value["path"]] = (value["oid"], True)
                elif key == "deletedFile":
                    if tree.pop(value["path"], None) is None:
                        raise HubError(404, f"A file with this name doesn't exist: {value['path']}", "EntryNotFound")
                elif key == "deletedFolder":
                    folder = value["path"].rstrip("/") + "/"
                    tree = {path: blob for path, blob in tree.items() if not path.startswith(folder)}
                else:
                    raise HubError(400, f"LocalHub does not implement the commit operation '{key}'")
            self._objects.update(objects)
            oid = self._add_commit(f"{repo_type}/{repo}", header["value"]["summary"], tree)["oid"]
        url = f"{self._url(repo_type, repo)}/commit/{oid}"
        return _json({"success": True, "commitOid": oid, "commitUrl": url, "hookOutput": "", "pullRequestUrl": None})

    def _lfs_batch(self, user, body, query, repo, repo_type):
        self._repo(user, repo_type, repo, write=True)
        request, objects = json.loads(body), []
        if request.get("operation") != "upload" or "basic" not in request.get("transfers", ["basic"]):
            raise HubError(400, "LocalHub only accepts uploads with the 'basic' LFS transfer")
        for obj in request["objects"]:
            answer = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
            if obj["oid"] not in self._objects:  # an answer without "actions" tells the client to skip the upload
                key = secrets.token_hex(16)
                self._upload_keys[key] = (obj["oid"], obj["size"])
                answer["actions"] = {
                    "upload": {"href": f"{self.endpoint}/lfs-objects/{obj['oid']}?key={key}"},
                    "verify": {"href": f"{self._url(repo_type, repo)}.git/info/lfs/objects/verify"},
                }
            objects.append(answer)
        return _json({"transfer": "basic", "objects": objects, "hash_algo": "sha256"}, "application/vnd.git-lfs+json")

    def _lfs_put(self, user, body, query, oid):
        expected = self._upload_keys.pop(query.get("key", [""])[0], None)
        if expected != (oid, len(body)) or hashlib.sha256(body).hexdigest() != oid:
            raise HubError(403, "Bad upload key, size or sha256 for this LFS object")
        self._objects[oid] = body
        return 200, {}, b""

    def _lfs_verify(self, user, body, query, repo, repo_type):
        self._repo(user, repo_type, repo, write=True)
        obj = json.loads(body)
        if obj["oid"] not in self._objects or len(self._objects[obj["oid"]]) != obj["size"]:
            raise HubError(404, f"LFS object {obj['oid']} not found")
        return _json({"success": True})


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())


def _json(payload, content_type: str = "application/json") -> tuple[int, dict, bytes]:
    return 200, {"Content-Type": content_type}, json.dumps(payload).encode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the client expects; every answer carries a Content-Length

    def do_GET(self) -> None:
        status, headers, body = self.server.hub.handle(self.command, self.path, self.headers, self._read_body())
        self.send_response(status)
        headers.setdefault("Content-Type", "application/json")
        for name, value in {**headers, "Content-Length": str(len(body))}.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_HEAD = do_POST = do_PUT = do_DELETE = do_GET

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() != "chunked":
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))
        chunks = []
        while size := int(self.rfile.readline().split(b";")[0], 16):
            chunks.append(self.rfile.read(size))
            self.rfile.readline()
        self.rfile.readline()  # the blank line after the last (empty) chunk; trailers are not supported
        return b"".join(chunks)

    def log_message(self, *args) -> None:  # quiet: `LocalHub.requests` keeps the log
        pass
