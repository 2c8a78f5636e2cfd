using Azure.Identity;
using Azure.Monitor.OpenTelemetry.Exporter;
using Leuko.Azure.Hosting;
using Leuko.Pipeline.Stages;
using Microsoft.Azure.Functions.Worker.Builder;
using Microsoft.Azure.Functions.Worker.OpenTelemetry;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using OpenTelemetry;
using OpenTelemetry.Trace;

// The function app: thin functions over the pipeline stages (Leuko.Pipeline), wired by Leuko.Azure from configuration.
var builder = FunctionsApplication.CreateBuilder(args);
builder.ConfigureFunctionsWebApplication();
builder.Services.AddLeukoPipeline(builder.Configuration);

// Callers of the HTTP API: named client keys (Leuko:ApiKeysFile, the host's own secrets file) and their roles
// (Leuko:ApiClients), validated at start, so a host without a usable client key does not start.
builder.Services.AddLeukoApiAccess();

// Traces of the pipeline's stages (and the Functions host's) to Application Insights when it is configured.
var telemetry = builder.Services.AddOpenTelemetry().UseFunctionsWorkerDefaults().WithTracing(t => t.AddSource(PipelineTelemetry.SourceName));
if (!string.IsNullOrEmpty(builder.Configuration["APPLICATIONINSIGHTS_CONNECTION_STRING"]))
{
    // Application Insights has local (key) authentication disabled (infra/): the exporter signs in with the app's
    // identity, which DefaultAzureCredential picks from AZURE_CLIENT_ID (set by infra/modules/functionapp.bicep).
    telemetry.UseAzureMonitorExporter(o => o.Credential = new DefaultAzureCredential());
}

builder.Build().Run();
