// CurveZMQ keys (RFC 26) as rma keeps them: Z85 text (40 characters for 32 bytes), a secret key
// file per process (the broker's, each worker's, each gateway's), and lists of allowed public keys.
//
// A secret key file holds the Z85 secret key on its first line that is not a comment ('#'); it is
// readable by its owner only (like ssh's private keys), and the public key is derived from it, so
// the two cannot disagree. A key list holds one Z85 public key a line, optionally followed by a
// space and a comment (whose key it is), with blank lines and '#' comment lines, like ssh's
// authorized_keys; a bad line is an error naming the file and the line. (Z85 has '#' among its
// characters, though never first: a comment is a line that starts with '#'; a '#' inside a key is
// part of it.)
#pragma once

#include <zmq.hpp>

#include <set>
#include <string>
#include <string_view>

#include "common/status.h"

namespace rma::proto {

struct CurveKeypair {
  std::string public_key;  // Z85
  std::string secret_key;  // Z85
};

// Whether this libzmq can do CURVE at all (Debian's is built with libsodium).
bool CurveAvailable();
// Whether `text` is a well-formed Z85 key (40 characters that decode to 32 bytes).
bool IsZ85Key(std::string_view text);
// Z85 of a 32-byte binary key (as a ZAP request carries it); "" for any other size.
std::string Z85FromBinaryKey(std::string_view binary);

Result<CurveKeypair> GenerateCurveKeypair();
Result<CurveKeypair> KeypairFromSecret(const std::string& secret_key);

// Reads a secret key file (refused when others may read it).
Result<CurveKeypair> ReadSecretKeyFile(const std::string& path);
// Reads `path`, or when it does not exist creates it with a new keypair (0600, the directory
// created too) and writes the public key next to it as `path` + ".pub".
Result<CurveKeypair> LoadOrCreateSecretKeyFile(const std::string& path);
// Writes a new keypair as DIR/NAME.key (secret, 0600) and DIR/NAME.pub; refuses to overwrite.
Result<CurveKeypair> WriteNewKeypair(const std::string& dir, const std::string& name);

// Reads a list of allowed public keys.
Result<std::set<std::string>> ReadKeyList(const std::string& path);
// A public key given on the command line: the Z85 key itself, or a file holding it (a .pub file).
Result<std::string> ResolvePublicKey(const std::string& key_or_file);

// Makes `socket` a CURVE client of the server `server_public_key` as `mine` (before connect).
void UseCurveClient(zmq::socket_t& socket, const CurveKeypair& mine,
                    const std::string& server_public_key);
// Makes `socket` a CURVE server with `keys` (before bind).
void UseCurveServer(zmq::socket_t& socket, const CurveKeypair& keys);

}  // namespace rma::proto
