package cronbridge.quartz;

import java.io.IOException;
import java.io.InputStream;
import java.net.InetAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.Date;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.ConcurrentHashMap;

import org.quartz.JobExecutionContext;
import org.quartz.JobExecutionException;
import org.quartz.JobKey;
import org.quartz.JobListener;
import org.quartz.Scheduler;
import org.quartz.SchedulerConfigException;
import org.quartz.SchedulerException;
import org.quartz.Trigger;
import org.quartz.Trigger.CompletedExecutionInstruction;
import org.quartz.TriggerListener;
import org.quartz.spi.ClassLoadHelper;
import org.quartz.spi.SchedulerPlugin;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * cron-bridge's Quartz plugin: records every firing of the scheduler in the bridge's spool
 * (legacy_wrappers/spool.py, {@code "source":"quartz"}) and stands a job down for the slots
 * the bridge's authority files give to Celery.
 *
 * <pre>
 * org.quartz.plugin.bridge.class = cronbridge.quartz.BridgePlugin
 * org.quartz.plugin.bridge.spoolDir = /var/spool/cron-bridge/quartz
 * org.quartz.plugin.bridge.authorityDir = /var/lib/cron-bridge/authority
 * org.quartz.plugin.bridge.hostName = app-1            (default: the local host name)
 * org.quartz.plugin.bridge.maxSpoolBytes = 16777216    (rotate a spool file past this size)
 * org.quartz.plugin.bridge.jobIdMapping = auto         (auto | job | trigger)
 * org.quartz.plugin.bridge.jobIdMapFile = /etc/cron-bridge/quartz-ids.properties (optional)
 * org.quartz.plugin.bridge.queueSize = 10000           (records waiting for the disk)
 * org.quartz.plugin.bridge.exportFile = /var/lib/cron-bridge/quartz-export.json (optional)
 * org.quartz.plugin.bridge.exportIntervalSeconds = 300 (re-export period; 0 = at start only)
 * </pre>
 *
 * <p>{@code exportFile}: the scheduler's job and trigger definitions, whatever its JobStore, for
 * {@code bridge import quartz --export FILE} (see {@link Exporter}); written when the scheduler
 * starts (after its start-up misfire recovery) and every {@code exportIntervalSeconds} by a
 * daemon thread. A failed export is logged and retried at the next period.
 *
 * <p>Job ids: {@code auto} is the importer's rule (crontab_import/quartz.py):
 * {@code <job-group>.<job-name>} when the job has one trigger, {@code
 * <job-group>.<job-name>.<trigger-name>} when it has several ({@code
 * <job-group>.<job-name>.<trigger-group>.<trigger-name>} when two of them share a name),
 * characters outside {@code [A-Za-z0-9._@-]} replaced by {@code -}. {@code job} and {@code
 * trigger} force the first or the second form. A {@code jobIdMapFile} (Java properties: {@code
 * <trigger-group>.<trigger-name>} or {@code <job-group>.<job-name>} = job id) overrides both,
 * e.g. for the ids the importer renamed {@code -2}.
 *
 * <p>Never fails or delays a job because of the bridge: every callback catches everything,
 * records are written by a background thread (see {@link SpoolWriter}), and a record that
 * cannot be written is dropped and counted.
 */
public class BridgePlugin implements SchedulerPlugin, TriggerListener, JobListener {
    private static final Logger LOG = LoggerFactory.getLogger(BridgePlugin.class);
    private static final String STARTED = "cron-bridge.started";
    private static final long ID_TTL_MILLIS = 30_000;

    private String name = "bridge";
    private Scheduler scheduler;
    private String spoolDir;
    private String authorityDir;
    private String hostName;
    private long maxSpoolBytes = 16L * 1024 * 1024;
    private int queueSize = 10_000;
    private String jobIdMapping = "auto";
    private String jobIdMapFile;
    private final Properties idMap = new Properties();
    private final ConcurrentHashMap<String, Object[]> ids = new ConcurrentHashMap<>();
    private SpoolWriter writer;
    private AuthorityCache authority;
    private String exportFile;
    private long exportIntervalSeconds = 300;
    private java.util.concurrent.ScheduledExecutorService exporter;

    // --- properties (set by StdSchedulerFactory from org.quartz.plugin.<name>.*) ---------------

    public void setSpoolDir(String v) { spoolDir = v; }
    public void setAuthorityDir(String v) { authorityDir = v; }
    public void setHostName(String v) { hostName = v; }
    public void setMaxSpoolBytes(long v) { maxSpoolBytes = v; }
    public void setQueueSize(int v) { queueSize = v; }
    public void setJobIdMapping(String v) { jobIdMapping = v; }
    public void setJobIdMapFile(String v) { jobIdMapFile = v; }
    public void setExportFile(String v) { exportFile = v; }
    public void setExportIntervalSeconds(long v) { exportIntervalSeconds = v; }

    public long getDroppedCount() { return writer == null ? 0 : writer.droppedCount(); }

    // --- SchedulerPlugin ------------------------------------------------------------------------

    @Override
    public void initialize(String pluginName, Scheduler sched, ClassLoadHelper loadHelper)
            throws SchedulerException {
        name = pluginName;
        scheduler = sched;
        if (spoolDir == null || spoolDir.trim().isEmpty()) {
            throw new SchedulerConfigException("cron-bridge plugin " + name + ": spoolDir is required");
        }
        if (!jobIdMapping.equals("auto") && !jobIdMapping.equals("job")
                && !jobIdMapping.equals("trigger")) {
            throw new SchedulerConfigException("cron-bridge plugin " + name
                    + ": jobIdMapping must be auto, job or trigger, not '" + jobIdMapping + "'");
        }
        if (jobIdMapFile != null && !jobIdMapFile.trim().isEmpty()) {
            try (InputStream in = Files.newInputStream(Paths.get(jobIdMapFile.trim()))) {
                idMap.load(in);
            } catch (IOException e) {
                throw new SchedulerConfigException("cron-bridge plugin " + name
                        + ": cannot read jobIdMapFile " + jobIdMapFile + ": " + e);
            }
        }
        if (hostName == null || hostName.trim().isEmpty()) {
            hostName = localHost();
        }
        if (maxSpoolBytes < 4096) {
            maxSpoolBytes = 4096;
        }
        Path spool = Paths.get(spoolDir.trim());
        authority = new AuthorityCache(
                authorityDir == null || authorityDir.trim().isEmpty() ? null
                        : Paths.get(authorityDir.trim()), LOG::warn);
        writer = new SpoolWriter(spool, hostName, maxSpoolBytes, queueSize, LOG::warn);
        writer.start();
        sched.getListenerManager().addTriggerListener(this);
        sched.getListenerManager().addJobListener(this);
        LOG.info("cron-bridge plugin {}: spool {}, authority {}, host {}", name, spool,
                authorityDir, hostName);
    }

    @Override
    public void start() {
        if (exportFile == null || exportFile.trim().isEmpty()) {
            return;
        }
        Path file = Paths.get(exportFile.trim());
        exporter = java.util.concurrent.Executors.newSingleThreadScheduledExecutor(r -> {
            Thread t = new Thread(r, "cron-bridge-export-" + name);
            t.setDaemon(true);
            return t;
        });
        Runnable export = () -> {
            try {
                Exporter.write(scheduler, file);
            } catch (Throwable t) {
                LOG.warn("cron-bridge plugin {}: cannot export to {}: {}", name, file, t.toString());
            }
        };
        if (exportIntervalSeconds > 0) {
            exporter.scheduleWithFixedDelay(export, 0, exportIntervalSeconds,
                    java.util.concurrent.TimeUnit.SECONDS);
        } else {
            exporter.execute(export);
        }
    }

    /** Write the export now (the same as the periodic export), e.g. from an admin endpoint. */
    public void exportNow() throws SchedulerException, IOException {
        if (exportFile == null || exportFile.trim().isEmpty()) {
            throw new SchedulerConfigException("cron-bridge plugin " + name + ": no exportFile");
        }
        Exporter.write(scheduler, Paths.get(exportFile.trim()));
    }

    @Override
    public void shutdown() {
        if (exporter != null) {
            exporter.shutdownNow();
        }
        if (writer != null) {
            writer.stop(10_000);
            LOG.info("cron-bridge plugin {}: {} record(s) spooled, {} dropped", name,
                    writer.writtenCount(), writer.droppedCount());
        }
    }

    // --- TriggerListener / JobListener ----------------------------------------------------------

    @Override
    public String getName() {
        return "cron-bridge-" + name;
    }

    @Override
    public void triggerFired(Trigger trigger, JobExecutionContext context) {
    }

    @Override
    public boolean vetoJobExecution(Trigger trigger, JobExecutionContext context) {
        try {
            long slot = slotOf(context);
            String jobId = jobId(context);
            if (!AuthorityCache.CELERY.equals(authority.ownerAt(jobId, slot))) {
                return false;
            }
            Json j = base(context, jobId, slot, "stand-down", "stood-down", "vetoed");
            writer.offer(j.line(), "job " + jobId + " slot " + slot);
            return true;
        } catch (Throwable t) {
            LOG.warn("cron-bridge: cannot decide the owner of a firing of {}; letting it run",
                    context.getJobDetail().getKey(), t);
            return false;
        }
    }

    @Override
    public void triggerMisfired(Trigger trigger) {
    }

    @Override
    public void triggerComplete(Trigger trigger, JobExecutionContext context,
            CompletedExecutionInstruction instruction) {
    }

    @Override
    public void jobToBeExecuted(JobExecutionContext context) {
        try {
            context.put(STARTED, System.currentTimeMillis());
        } catch (Throwable t) {
            // never disturb the job
        }
    }

    @Override
    public void jobExecutionVetoed(JobExecutionContext context) {
        // recorded by vetoJobExecution (a veto by another listener is not ours to record)
    }

    @Override
    public void jobWasExecuted(JobExecutionContext context, JobExecutionException failure) {
        try {
            long finished = System.currentTimeMillis();
            long slot = slotOf(context);
            String jobId = jobId(context);
            Json j = base(context, jobId, slot, "authoritative",
                    failure == null ? "succeeded" : "failed", "run");
            Object started = context.get(STARTED);
            if (started instanceof Long) {
                j.time("started_at", (Long) started);
            }
            j.time("finished_at", finished);
            j.str("error", failure == null ? null : describe(failure));
            writer.offer(j.line(), "job " + jobId + " slot " + slot);
        } catch (Throwable t) {
            LOG.warn("cron-bridge: cannot record a firing of {}", context.getJobDetail().getKey(), t);
        }
    }

    // --- records --------------------------------------------------------------------------------

    private Json base(JobExecutionContext c, String jobId, long slot, String role, String status,
            String kind) {
        String fireId = c.getFireInstanceId();
        String key = "quartz:" + sha256(jobId + "|" + slot + "|" + hostName + "|" + fireId + "|"
                + c.getRefireCount() + "|" + kind).substring(0, 40);
        Json j = new Json()
                .num("v", 1)
                .str("source", "quartz")
                .str("record_key", key)
                .str("job_id", jobId)
                .slot("slot", slot)
                .str("path", "legacy")
                .str("role", role)
                .str("status", status);
        Date fired = c.getFireTime();
        if (fired != null) {
            j.time("fired_at", fired.getTime());
        }
        return j.num("attempts", c.getRefireCount() + 1L)
                .str("host", hostName)
                .str("job_key", c.getJobDetail().getKey().toString())
                .str("trigger_key", c.getTrigger().getKey().toString())
                .str("fire_instance_id", fireId);
    }

    private static long slotOf(JobExecutionContext c) {
        Date scheduled = c.getScheduledFireTime();
        Date when = scheduled != null ? scheduled : c.getFireTime();
        return Math.floorDiv(when.getTime(), 1000L);
    }

    /** "class: message" of what the job threw (past Quartz's own wrappers), bounded. */
    static String describe(Throwable failure) {
        Throwable t = failure;
        while (t.getCause() != null && t.getCause() != t
                && (t instanceof JobExecutionException || t instanceof SchedulerException)) {
            t = t.getCause();
        }
        String text = t.getClass().getName() + (t.getMessage() == null ? "" : ": " + t.getMessage());
        return text.length() > 2000 ? text.substring(0, 2000) + "..." : text;
    }

    // --- job ids --------------------------------------------------------------------------------

    String jobId(JobExecutionContext c) throws SchedulerException {
        JobKey job = c.getJobDetail().getKey();
        Trigger trigger = c.getTrigger();
        String cacheKey = job + "|" + trigger.getKey();
        long now = System.currentTimeMillis();
        Object[] hit = ids.get(cacheKey);
        if (hit != null && (Long) hit[1] > now) {
            return (String) hit[0];
        }
        String id = computeJobId(job, trigger);
        ids.put(cacheKey, new Object[] {id, now + ID_TTL_MILLIS});
        return id;
    }

    private String computeJobId(JobKey job, Trigger trigger) throws SchedulerException {
        String mapped = idMap.getProperty(trigger.getKey().toString());
        if (mapped == null) {
            mapped = idMap.getProperty(job.toString());
        }
        if (mapped != null && !mapped.trim().isEmpty()) {
            return mapped.trim();
        }
        String triggerName = trigger.getKey().getName();
        if (jobIdMapping.equals("job")) {
            return sanitize(job.toString());
        }
        if (jobIdMapping.equals("trigger")) {
            return sanitize(job + "." + triggerName);
        }
        List<? extends Trigger> triggers = scheduler.getTriggersOfJob(job);
        if (triggers.size() <= 1) {
            return sanitize(job.toString());
        }
        int sameName = 0;
        for (Trigger t : triggers) {
            if (t.getKey().getName().equals(triggerName)) {
                sameName++;
            }
        }
        return sanitize(job + "." + (sameName > 1 ? trigger.getKey().toString() : triggerName));
    }

    /** crontab_import.quartz.items.safe_job_id, code point for code point. */
    static String sanitize(String raw) {
        StringBuilder s = new StringBuilder();
        raw.codePoints().forEach(cp -> s.append(
                (cp >= 'A' && cp <= 'Z') || (cp >= 'a' && cp <= 'z') || (cp >= '0' && cp <= '9')
                        || cp == '.' || cp == '_' || cp == '@' || cp == '-' ? (char) cp : '-'));
        int start = 0;
        while (start < s.length() && !Character.isLetterOrDigit(s.charAt(start))) {
            start++;
        }
        String text = s.substring(start);
        if (text.isEmpty()) {
            text = "quartz-job";
        }
        if (text.length() > 200) {
            text = text.substring(0, 191) + "-" + sha256(raw).substring(0, 8);
        }
        return text;
    }

    static String sha256(String text) {
        try {
            byte[] d = MessageDigest.getInstance("SHA-256").digest(text.getBytes(StandardCharsets.UTF_8));
            StringBuilder hex = new StringBuilder();
            for (byte b : d) {
                hex.append(String.format("%02x", b & 0xff));
            }
            return hex.toString();
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    private static String localHost() {
        try {
            return InetAddress.getLocalHost().getHostName();
        } catch (IOException | RuntimeException e) {
            String env = System.getenv("HOSTNAME");
            return env == null || env.isEmpty() ? "localhost" : env;
        }
    }
}
