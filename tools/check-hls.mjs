#!/usr/bin/env node
// Validate HLS playlists (RFC 8216) with hls-parser in strict mode.
//
// Usage: node tools/check-hls.mjs FILE.m3u8 [FILE.m3u8 ...]
//
// Each file is parsed on its own (a master playlist's variants are not followed; pass them
// too). Prints one "OK" line per valid file; on the first invalid file prints a FAIL line to
// stderr and exits 1. Exit 2 means a usage or setup problem (missing file, hls-parser not
// installed: run `npm ci` in tools/).
//
// Besides what hls-parser checks in strict mode (EXTM3U first, EXTINF <= TARGETDURATION,
// required attributes, tag placement, ...), this also enforces RFC 8216 section 4.1: the
// file MUST be UTF-8 and MUST NOT start with a byte order mark.

import { readFile } from 'node:fs/promises';

const USAGE = 'usage: node tools/check-hls.mjs FILE.m3u8 [FILE.m3u8 ...]';

function fail(code, message) {
  process.stderr.write(`${message}\n`);
  process.exit(code);
}

const files = process.argv.slice(2);
if (files.length === 0) fail(2, USAGE);
if (files.includes('-h') || files.includes('--help')) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}

let HLS;
try {
  HLS = (await import('hls-parser')).default;
} catch (err) {
  fail(2, `check-hls: cannot load hls-parser (${err.code ?? err.message}); run \`npm ci\` in tools/ first`);
}
HLS.setOptions({ strictMode: true, silent: true });

const utf8 = new TextDecoder('utf-8', { fatal: true });

function describe(playlist) {
  if (playlist.isMasterPlaylist) {
    const groups = new Set(playlist.variants.flatMap((v) =>
      [...v.audio, ...v.video, ...v.subtitles, ...v.closedCaptions].map((r) => `${r.type}:${r.groupId}`)));
    return `master playlist, ${playlist.variants.length} variant(s), ${groups.size} rendition group(s)`;
  }
  const total = playlist.segments.reduce((sum, s) => sum + (s.duration ?? 0), 0);
  const kind = [playlist.playlistType, playlist.endlist ? 'ENDLIST' : 'no ENDLIST'].filter(Boolean).join(', ');
  return `media playlist, ${playlist.segments.length} segment(s), TARGETDURATION ${playlist.targetDuration}, ` +
    `${total.toFixed(3)} s, ${kind}`;
}

for (const file of files) {
  let bytes;
  try {
    bytes = await readFile(file);
  } catch (err) {
    fail(2, `FAIL ${file}: cannot read (${err.code ?? err.message})`);
  }
  if (bytes.length >= 3 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) {
    fail(1, `FAIL ${file}: starts with a UTF-8 byte order mark (RFC 8216 4.1: MUST NOT)`);
  }
  let text;
  try {
    text = utf8.decode(bytes);
  } catch {
    fail(1, `FAIL ${file}: not valid UTF-8 (RFC 8216 4.1)`);
  }
  let playlist;
  try {
    playlist = HLS.parse(text);
  } catch (err) {
    fail(1, `FAIL ${file}: ${err.message}`);
  }
  process.stdout.write(`OK ${file}: ${describe(playlist)}\n`);
}
