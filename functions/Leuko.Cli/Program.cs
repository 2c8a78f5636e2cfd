using Leuko.Cli;

return await LeukoCommand.InvokeAsync(args);
