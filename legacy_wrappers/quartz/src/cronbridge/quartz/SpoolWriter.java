package cronbridge.quartz;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.channels.OverlappingFileLockException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.BasicFileAttributes;
import java.time.ZoneOffset;
import java.time.ZonedDateTime;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Appends spool lines (legacy_wrappers/spool.py, format version 1) from a background thread,
 * so a Quartz worker thread never waits for the disk: {@link #offer} only queues the line;
 * a full queue, a full disk or an unwritable directory drops the record and counts the drop.
 *
 * <p>Files: {@code quartz-<UTC yyyyMMdd>-<host>-p<pid>-<start>-<seq>.jsonl} ({@code start}: when
 * the JVM loaded the plugin, base 36 milliseconds); when a file would grow past {@code maxBytes}
 * the next sequence number starts a new one (rotation), and so does a file the flusher removed:
 * a name is never reused. Each append opens the
 * file with O_APPEND, takes an exclusive {@link FileChannel#lock} (a POSIX record lock: the
 * Python flusher's {@code lockf} sees it), checks that the path still names the file it
 * opened (the flusher removes files it uploaded), ends a torn last line with a newline, writes
 * the line in one write and forces it to disk.
 *
 * <p>Drops: counted in memory and added to {@code <dir>/.dropped} ("dropped N", the number
 * fixed-width so the update rewrites the same bytes in place: it works on a full disk, and in a
 * read-only directory when the file already exists), which {@code bridge legacy ingest
 * --quartz-spool} reports and resets; each drop is also logged.
 */
final class SpoolWriter {
    static final String DROPPED = ".dropped";
    static final int WIDTH = 20;
    private static final long LOCK_WAIT_MILLIS = 2000;

    interface Log {
        void warn(String message);
    }

    private final Path dir;
    private final String host;
    private final long maxBytes;
    private final Log log;
    private final BlockingQueue<String> queue;
    private final AtomicLong dropped = new AtomicLong();
    private final AtomicLong written = new AtomicLong();
    private final AtomicLong unsaved = new AtomicLong(); // drops not yet added to .dropped
    private int seq;
    private Object lastKey; // the file this writer last appended to under the current name
    private final Thread thread;
    private volatile boolean stopping;
    private static final String STOP = "";
    private static final String PID = pid();
    private static final String RUN = Long.toString(System.currentTimeMillis(), 36);

    private static String pid() {
        String name = java.lang.management.ManagementFactory.getRuntimeMXBean().getName();
        int at = name.indexOf('@');
        String pid = at > 0 ? name.substring(0, at) : "";
        return pid.matches("[0-9]+") ? pid : Long.toHexString(System.nanoTime());
    }

    SpoolWriter(Path dir, String host, long maxBytes, int queueSize, Log log) {
        this.dir = dir;
        this.host = safe(host);
        this.maxBytes = maxBytes;
        this.log = log;
        this.queue = new ArrayBlockingQueue<>(Math.max(queueSize, 1));
        this.thread = new Thread(this::run, "cron-bridge-spool");
        this.thread.setDaemon(true);
    }

    void start() {
        try {
            Files.createDirectories(dir);
        } catch (IOException | RuntimeException e) {
            log.warn("cron-bridge: spool directory " + dir + " is not usable: " + e);
        }
        ensureCounter();
        thread.start();
    }

    /** Queue one line; never blocks, never does I/O. False (and the drop counted; the writer
     * thread adds it to .dropped) when the queue is full. */
    boolean offer(String line, String what) {
        if (stopping || !queue.offer(line)) {
            drop(what, stopping ? "the scheduler is shutting down" : "the spool queue is full",
                    false);
            return false;
        }
        return true;
    }

    long droppedCount() {
        return dropped.get();
    }

    long writtenCount() {
        return written.get();
    }

    /** Write what is queued (waiting at most {@code millis}), then stop the thread. */
    void stop(long millis) {
        stopping = true;
        queue.offer(STOP);
        try {
            thread.join(millis);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        if (thread.isAlive()) {
            thread.interrupt();
            log.warn("cron-bridge: " + queue.size() + " spool record(s) not written at shutdown");
        }
        saveCounter();
    }

    private void run() {
        while (true) {
            String line;
            try {
                line = queue.poll(1, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                return;
            }
            if (unsaved.get() > 0) {
                saveCounter();
            }
            if (line == null) {
                if (stopping) {
                    return; // the stop marker did not fit in a full queue: drained anyway
                }
                continue;
            }
            if (line == STOP) {
                if (queue.isEmpty()) {
                    return;
                }
                continue;
            }
            write(line);
        }
    }

    private void write(String line) {
        byte[] data = line.getBytes(StandardCharsets.US_ASCII);
        String why = null;
        for (int attempt = 0; attempt < 20 && why == null; attempt++) {
            Path path = dir.resolve(fileName());
            try {
                Result r = append(path, data);
                if (r == Result.WRITTEN) {
                    written.incrementAndGet();
                    return;
                }
                // TOO_BIG: rotate; BUSY: step aside from a file someone keeps locked; GONE: the
                // flusher uploaded and removed (or archived) it: never reuse a name, so an
                // archive never holds two files of one name
                seq++;
                lastKey = null;
            } catch (IOException | RuntimeException e) {
                why = e.toString();
            }
        }
        drop(describe(line), why == null ? "could not get a spool file" : why, true);
    }

    private enum Result { WRITTEN, TOO_BIG, BUSY, GONE }

    private Result append(Path path, byte[] data) throws IOException {
        Object before = key(path);
        if (lastKey != null && !lastKey.equals(before)) {
            return Result.GONE; // uploaded and removed since our last line: take a new name
        }
        try (FileChannel ch = FileChannel.open(path, StandardOpenOption.CREATE,
                StandardOpenOption.WRITE, StandardOpenOption.APPEND)) {
            Object opened = key(path);
            FileLock lock = lock(ch);
            if (lock == null) {
                return Result.BUSY;
            }
            try {
                Object now = key(path);
                if (now == null || !now.equals(opened) || (before != null && !before.equals(now))) {
                    return Result.GONE;
                }
                long size = ch.size();
                if (size > 0 && size + data.length > maxBytes) {
                    return Result.TOO_BIG;
                }
                ByteBuffer buf = ByteBuffer.wrap(data);
                if (size > 0) {
                    ByteBuffer last = ByteBuffer.allocate(1);
                    try (FileChannel reader = FileChannel.open(path, StandardOpenOption.READ)) {
                        reader.read(last, size - 1);
                    }
                    if (last.get(0) != '\n') {
                        byte[] fixed = new byte[data.length + 1];
                        fixed[0] = '\n';
                        System.arraycopy(data, 0, fixed, 1, data.length);
                        buf = ByteBuffer.wrap(fixed); // end the torn line, keep ours whole
                    }
                }
                while (buf.hasRemaining()) {
                    ch.write(buf);
                }
                ch.force(false);
                lastKey = now;
                return Result.WRITTEN;
            } finally {
                if (lock.isValid()) {
                    lock.release();
                }
            }
        }
    }

    private static FileLock lock(FileChannel ch) throws IOException {
        long deadline = System.currentTimeMillis() + LOCK_WAIT_MILLIS;
        while (true) {
            try {
                FileLock lock = ch.tryLock();
                if (lock != null) {
                    return lock;
                }
            } catch (OverlappingFileLockException e) {
                // another channel of this JVM holds it: wait like for another process
            }
            if (System.currentTimeMillis() >= deadline) {
                return null;
            }
            try {
                Thread.sleep(20);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return null;
            }
        }
    }

    private static Object key(Path path) {
        try {
            BasicFileAttributes a = Files.readAttributes(path, BasicFileAttributes.class);
            return a.fileKey() != null ? a.fileKey() : path.toString();
        } catch (IOException e) {
            return null;
        }
    }

    private String fileName() {
        String day = ZonedDateTime.now(ZoneOffset.UTC).toLocalDate().toString().replace("-", "");
        return "quartz-" + day + "-" + host + "-p" + PID + "-" + RUN + "-" + seq + ".jsonl";
    }

    // --- drops ----------------------------------------------------------------------------------

    private void drop(String what, String why, boolean save) {
        long total = dropped.incrementAndGet();
        unsaved.incrementAndGet();
        boolean saved = save && saveCounter();
        log.warn("cron-bridge: dropped the spool record of " + what + ": " + why + " (" + total
                + " dropped since start" + (saved || !save ? "" : "; " + DROPPED
                + " not writable either") + ")");
    }

    /** Create {@code .dropped} ("dropped 0") while the directory is writable. */
    private void ensureCounter() {
        Path path = dir.resolve(DROPPED);
        if (Files.exists(path)) {
            return;
        }
        try (FileChannel ch = FileChannel.open(path, StandardOpenOption.CREATE_NEW,
                StandardOpenOption.WRITE)) {
            ch.write(ByteBuffer.wrap(counterText(0)));
            ch.force(false);
        } catch (IOException | RuntimeException e) {
            // someone else created it, or the directory is not writable: the drops are logged
        }
    }

    private synchronized boolean saveCounter() {
        long add = unsaved.get();
        if (add == 0) {
            return true;
        }
        Path path = dir.resolve(DROPPED);
        try (FileChannel ch = FileChannel.open(path, StandardOpenOption.READ,
                StandardOpenOption.WRITE, StandardOpenOption.CREATE)) {
            FileLock lock = lock(ch);
            if (lock == null) {
                return false;
            }
            try {
                ByteBuffer buf = ByteBuffer.allocate(64);
                ch.read(buf, 0);
                long current = parseCounter(new String(buf.array(), 0, buf.position(),
                        StandardCharsets.US_ASCII));
                byte[] text = counterText(current + add);
                ch.write(ByteBuffer.wrap(text), 0);
                if (ch.size() > text.length) {
                    ch.truncate(text.length);
                }
                ch.force(false);
                unsaved.addAndGet(-add);
                return true;
            } finally {
                if (lock.isValid()) {
                    lock.release();
                }
            }
        } catch (IOException | RuntimeException e) {
            return false;
        }
    }

    static byte[] counterText(long n) {
        String digits = Long.toString(n);
        StringBuilder s = new StringBuilder("dropped ");
        for (int i = digits.length(); i < WIDTH; i++) {
            s.append('0');
        }
        return s.append(digits).append('\n').toString().getBytes(StandardCharsets.US_ASCII);
    }

    static long parseCounter(String text) {
        String t = text.trim();
        if (!t.startsWith("dropped ")) {
            return 0;
        }
        try {
            return Long.parseLong(t.substring(8).trim());
        } catch (NumberFormatException e) {
            return 0;
        }
    }

    private static String describe(String line) {
        int i = line.indexOf("\"job_id\":");
        int j = line.indexOf("\"slot\":");
        String job = i < 0 ? "?" : line.substring(i + 9, Math.min(line.length(), line.indexOf(',', i)));
        String slot = j < 0 ? "?" : line.substring(j + 7, Math.min(line.length(), line.indexOf(',', j)));
        return "job " + job.replace("\"", "") + " slot " + slot.replace("\"", "");
    }

    static String safe(String host) {
        StringBuilder s = new StringBuilder();
        for (int i = 0; i < host.length() && s.length() < 64; i++) {
            char c = host.charAt(i);
            s.append(Character.isLetterOrDigit(c) && c < 128 || c == '-' || c == '_' ? c : '_');
        }
        return s.length() == 0 ? "host" : s.toString();
    }
}
