package cronbridge.test;

import org.quartz.Job;
import org.quartz.JobExecutionContext;

/** Always fails, with a message that needs JSON escaping. */
public class FailingJob implements Job {
    @Override
    public void execute(JobExecutionContext context) {
        throw new IllegalStateException("boom \"quoted\" \\ back\nline \u00e9");
    }
}
