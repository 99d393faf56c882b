package cronbridge.quartz;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.attribute.BasicFileAttributes;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Reads {@code <authorityDir>/<job_id>.authority} files (format: bridge/authority_files.py,
 * version 1) and answers "who owns slot S of job J?". Each file is parsed once and re-read
 * only when its modification time, size or inode changes (the exporter replaces it
 * atomically, so a reader sees the old file or the new one).
 *
 * <p>No file: legacy owns every slot. A file this reader must not trust (another header or
 * version, a malformed line, another job's name): the last good timeline read for the job is
 * kept, else legacy owns; either way a warning is logged once per file version.
 */
final class AuthorityCache {
    static final String HEADER = "cron-bridge-authority 1";
    static final String LEGACY = "legacy";
    static final String CELERY = "celery";

    /** One job's resolved timeline. */
    static final class Timeline {
        final String initial;
        final long[] epochs;
        final String[] owners;

        Timeline(String initial, long[] epochs, String[] owners) {
            this.initial = initial;
            this.epochs = epochs;
            this.owners = owners;
        }

        String ownerAt(long slotEpochSeconds) {
            String owner = initial;
            for (int i = 0; i < epochs.length && epochs[i] <= slotEpochSeconds; i++) {
                owner = owners[i];
            }
            return owner;
        }
    }

    private static final class Entry {
        final Object stamp;
        final Timeline timeline;

        Entry(Object stamp, Timeline timeline) {
            this.stamp = stamp;
            this.timeline = timeline;
        }
    }

    interface Warn {
        void warn(String message);
    }

    private final Path dir;
    private final Warn warn;
    private final ConcurrentHashMap<String, Entry> cache = new ConcurrentHashMap<>();

    AuthorityCache(Path dir, Warn warn) {
        this.dir = dir;
        this.warn = warn;
    }

    /** The owner ("legacy" or "celery") of the slot. Never throws. */
    String ownerAt(String jobId, long slotEpochSeconds) {
        Timeline t = timeline(jobId);
        return t == null ? LEGACY : t.ownerAt(slotEpochSeconds);
    }

    Timeline timeline(String jobId) {
        if (dir == null) {
            return null;
        }
        Path path = dir.resolve(jobId + ".authority");
        Object stamp;
        try {
            BasicFileAttributes a = Files.readAttributes(path, BasicFileAttributes.class);
            stamp = a.lastModifiedTime().toString() + "/" + a.size() + "/" + a.fileKey();
        } catch (NoSuchFileException e) {
            cache.remove(jobId);
            return null;
        } catch (IOException | RuntimeException e) {
            Entry old = cache.get(jobId);
            return old == null ? null : old.timeline;
        }
        Entry cached = cache.get(jobId);
        if (cached != null && Objects.equals(cached.stamp, stamp)) {
            return cached.timeline;
        }
        Timeline parsed;
        try {
            String text = new String(Files.readAllBytes(path), StandardCharsets.UTF_8);
            parsed = parse(text, jobId);
        } catch (NoSuchFileException e) {
            cache.remove(jobId);
            return null;
        } catch (IOException | IllegalArgumentException e) {
            Timeline keep = cached == null ? null : cached.timeline;
            warn.warn("cron-bridge: cannot use authority file " + path + " (" + e.getMessage()
                    + "); " + (keep == null ? "legacy keeps every slot" : "keeping the last good one"));
            cache.put(jobId, new Entry(stamp, keep));
            return keep;
        }
        cache.put(jobId, new Entry(stamp, parsed));
        return parsed;
    }

    /** Parse a version 1 file; IllegalArgumentException naming the line when refused. */
    static Timeline parse(String text, String jobId) {
        String[] lines = text.split("\n", -1);
        if (!lines[0].trim().equals(HEADER)) {
            throw new IllegalArgumentException("line 1: not a version 1 authority file");
        }
        String job = null;
        String initial = LEGACY;
        List<Long> epochs = new ArrayList<>();
        List<String> owners = new ArrayList<>();
        for (int n = 1; n < lines.length; n++) {
            String line = lines[n].trim();
            if (line.isEmpty() || line.startsWith("#")) {
                continue;
            }
            int blank = line.indexOf(' ');
            String first = blank < 0 ? line : line.substring(0, blank);
            String rest = blank < 0 ? "" : line.substring(blank + 1).trim();
            char c = first.charAt(0);
            if ((c >= '0' && c <= '9') || c == '-') {
                long epoch;
                try {
                    epoch = Long.parseLong(first);
                } catch (NumberFormatException e) {
                    throw new IllegalArgumentException("line " + (n + 1) + ": malformed timed line");
                }
                if (rest.indexOf(' ') >= 0) {
                    throw new IllegalArgumentException("line " + (n + 1) + ": malformed timed line");
                }
                owner(rest, n);
                if (!epochs.isEmpty() && epoch <= epochs.get(epochs.size() - 1)) {
                    throw new IllegalArgumentException("line " + (n + 1) + ": not increasing");
                }
                epochs.add(epoch);
                owners.add(rest);
            } else if (first.equals("job")) {
                job = rest;
            } else if (first.equals("initial")) {
                initial = owner(rest, n);
            }
            // any other keyword (schedule, a newer writer's addition) is ignored
        }
        if (job == null) {
            throw new IllegalArgumentException("no 'job' line");
        }
        if (!job.equals(jobId)) {
            throw new IllegalArgumentException("names job " + job + ", not " + jobId);
        }
        long[] e = new long[epochs.size()];
        for (int i = 0; i < e.length; i++) {
            e[i] = epochs.get(i);
        }
        return new Timeline(initial, e, owners.toArray(new String[0]));
    }

    private static String owner(String owner, int n) {
        if (!owner.equals(LEGACY) && !owner.equals(CELERY)) {
            throw new IllegalArgumentException("line " + (n + 1) + ": unknown owner '" + owner + "'");
        }
        return owner;
    }
}
