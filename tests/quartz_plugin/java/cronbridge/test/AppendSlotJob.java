package cronbridge.test;

import java.io.FileOutputStream;
import java.nio.charset.StandardCharsets;
import java.time.Instant;

import org.quartz.Job;
import org.quartz.JobExecutionContext;
import org.quartz.JobExecutionException;

/** Appends "<scheduledFireTime as ISO UTC seconds>\n" to the job-data-map's "file". */
public class AppendSlotJob implements Job {
    @Override
    public void execute(JobExecutionContext context) throws JobExecutionException {
        String file = context.getMergedJobDataMap().getString("file");
        long slot = Math.floorDiv(context.getScheduledFireTime().getTime(), 1000L);
        String line = Instant.ofEpochSecond(slot).toString() + "\n";
        try (FileOutputStream out = new FileOutputStream(file, true)) {
            out.write(line.getBytes(StandardCharsets.US_ASCII));
        } catch (java.io.IOException e) {
            throw new JobExecutionException(e);
        }
    }
}
